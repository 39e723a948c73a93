//! The kernel catalog: for each `EngineVersion` (major version, e.g. `4.4`) the minor kernel versions ddsd can
//! run, oldest first, with their release dates and release notes.
//!
//! The vendor writes kernel versions in two formats, and both are treated as opaque strings ordered by the
//! build date they embed:
//! - legacy (4.0–4.4): `mongodb_YYYYMMDD_X.Y.Z`, e.g. `mongodb_20220518_4.0.21` — the trailing triple is the
//!   vendor's kernel release, not the MongoDB version;
//! - current (5.0 and later): `X.Y.Z-YYYYMMDDhhmmss_N`, e.g. `5.0.5-20220721143518_0`, where `X.Y` is the
//!   engine version.
//!
//! The default catalog is `data/kernels.json`, embedded at build time; an operator can load another file's
//! contents with [`Catalog::from_json`] and add newer kernels with [`Catalog::publish`]. Loading validates
//! everything (formats, calendar dates, strict ordering, no duplicates), so the rest of ddsd can rely on a
//! catalog's order being the upgrade order.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The embedded default catalog.
pub const EMBEDDED_KERNELS_JSON: &str = include_str!("../data/kernels.json");

/// Longest kernel version string accepted anywhere (client input is checked against it before parsing).
pub const MAX_KERNEL_VERSION_LEN: usize = 64;
/// Longest release note accepted in a catalog.
pub const MAX_RELEASE_NOTE_LEN: usize = 4096;

/// One published kernel version of an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRelease {
    /// `KernelVersion` as the vendor writes it.
    pub kernel_version: String,
    /// Release date, `YYYY-MM-DD`.
    pub release_date: String,
    /// `ReleaseNote`, English.
    pub release_note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EngineKernels {
    engine_version: String,
    kernels: Vec<KernelRelease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CatalogFile {
    engines: Vec<EngineKernels>,
}

/// Which of the vendor's two spellings a kernel version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KernelFormat {
    /// `mongodb_YYYYMMDD_X.Y.Z` (engines before 5.0).
    Legacy,
    /// `X.Y.Z-YYYYMMDDhhmmss_N` (5.0 and later).
    Versioned,
}

/// A kernel version string taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelVersion {
    pub format: KernelFormat,
    /// The embedded build time as the number `YYYYMMDDhhmmss` (legacy versions carry a date only: `hhmmss` = 0).
    pub build: u64,
    /// The `X.Y.Z` triple.
    pub release: (u32, u32, u32),
    /// The `_N` build sequence of the versioned format (0 for legacy).
    pub sequence: u32,
}

impl KernelVersion {
    /// The `YYYYMMDD` build date.
    pub fn build_date(&self) -> u32 {
        (self.build / 1_000_000) as u32
    }
    /// For the versioned format, the engine version it belongs to (`X.Y`).
    pub fn engine_version(&self) -> Option<String> {
        (self.format == KernelFormat::Versioned)
            .then(|| format!("{}.{}", self.release.0, self.release.1))
    }
}

/// Why a kernel version string is not in one of the vendor's formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KernelFormatError(pub &'static str);

/// Parses a kernel version in either vendor format, checking the embedded date is a real calendar date.
pub fn parse_kernel_version(s: &str) -> Result<KernelVersion, KernelFormatError> {
    if s.is_empty() || s.len() > MAX_KERNEL_VERSION_LEN || !s.is_ascii() {
        return Err(KernelFormatError("empty, too long or not ASCII"));
    }
    if let Some(rest) = s.strip_prefix("mongodb_") {
        let (date, triple) = rest
            .split_once('_')
            .ok_or(KernelFormatError("expected mongodb_YYYYMMDD_X.Y.Z"))?;
        let ymd = parse_digits(date, 8).ok_or(KernelFormatError("build date must be YYYYMMDD"))?;
        check_date(ymd)?;
        let release = parse_triple(triple).ok_or(KernelFormatError("release must be X.Y.Z"))?;
        return Ok(KernelVersion {
            format: KernelFormat::Legacy,
            build: ymd * 1_000_000,
            release,
            sequence: 0,
        });
    }
    let (triple, rest) = s
        .split_once('-')
        .ok_or(KernelFormatError("expected X.Y.Z-YYYYMMDDhhmmss_N"))?;
    let release = parse_triple(triple).ok_or(KernelFormatError("release must be X.Y.Z"))?;
    let (stamp, seq) = rest
        .split_once('_')
        .ok_or(KernelFormatError("expected X.Y.Z-YYYYMMDDhhmmss_N"))?;
    let build =
        parse_digits(stamp, 14).ok_or(KernelFormatError("build time must be YYYYMMDDhhmmss"))?;
    check_date(build / 1_000_000)?;
    let (hh, mm, ss) = ((build / 10_000) % 100, (build / 100) % 100, build % 100);
    if hh > 23 || mm > 59 || ss > 59 {
        return Err(KernelFormatError("build time of day out of range"));
    }
    let sequence =
        parse_number(seq, 3).ok_or(KernelFormatError("build sequence must be 1-3 digits"))?;
    Ok(KernelVersion {
        format: KernelFormat::Versioned,
        build,
        release,
        sequence,
    })
}

/// The major versions (`EngineVersion`s) in upgrade order: a major version upgrade
/// (`UpgradeDBInstanceEngineVersion`) goes one step along this path at a time, and a mongod starts only on
/// a binary at most one step above the data's `featureCompatibilityVersion`.
pub const ENGINE_UPGRADE_PATH: [&str; 7] = ["4.0", "4.2", "4.4", "5.0", "6.0", "7.0", "8.0"];

/// The next major after `engine_version` on [`ENGINE_UPGRADE_PATH`] (`None` for the last or an unknown one).
pub fn next_engine_version(engine_version: &str) -> Option<&'static str> {
    let i = ENGINE_UPGRADE_PATH
        .iter()
        .position(|e| *e == engine_version)?;
    ENGINE_UPGRADE_PATH.get(i + 1).copied()
}

/// Position of a major on [`ENGINE_UPGRADE_PATH`].
pub fn engine_rank(engine_version: &str) -> Option<usize> {
    ENGINE_UPGRADE_PATH
        .iter()
        .position(|e| *e == engine_version)
}

/// The major a kernel belongs to: the embedded catalog's engine for a catalogued kernel, else the `X.Y` the
/// versioned format names (a legacy kernel the catalog does not know has no known major).
pub fn engine_of_kernel(kernel_version: &str) -> Option<String> {
    static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(Catalog::embedded);
    if let Some((e, _)) = catalog.position(kernel_version) {
        return Some(e.to_string());
    }
    parse_kernel_version(kernel_version)
        .ok()
        .and_then(|k| k.engine_version())
}

/// Whether `s` is a kernel version in one of the vendor's formats (`InvalidKernelReleaseNotes` otherwise).
pub fn is_valid_kernel_version(s: &str) -> bool {
    parse_kernel_version(s).is_ok()
}

/// Exactly `len` ASCII digits.
fn parse_digits(s: &str, len: usize) -> Option<u64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// 1..=`max_len` digits, no leading zero unless the number is 0.
fn parse_number(s: &str, max_len: usize) -> Option<u32> {
    let ok = !s.is_empty()
        && s.len() <= max_len
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok())?
}

fn parse_triple(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split('.');
    let t = (
        parse_number(it.next()?, 4)?,
        parse_number(it.next()?, 4)?,
        parse_number(it.next()?, 4)?,
    );
    it.next().is_none().then_some(t)
}

/// `ymd` = YYYYMMDD; a real date in 2000–2099.
fn check_date(ymd: u64) -> Result<(), KernelFormatError> {
    let (y, m, d) = (ymd / 10_000, (ymd / 100) % 100, ymd % 100);
    if !(2000..=2099).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(KernelFormatError("not a calendar date"));
    }
    Ok(())
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `YYYY-MM-DD` → YYYYMMDD.
fn parse_release_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let ymd = parse_digits(&s[0..4], 4)? * 10_000
        + parse_digits(&s[5..7], 2)? * 100
        + parse_digits(&s[8..10], 2)?;
    check_date(ymd).ok().map(|_| ymd)
}

/// `X.Y` with small numbers, e.g. `4.4`.
fn valid_engine_version(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(a, b)| parse_number(a, 2).is_some() && parse_number(b, 2).is_some())
}

/// Engines before 5.0 use the legacy format.
fn engine_uses_legacy(engine: &str) -> bool {
    engine
        .split_once('.')
        .and_then(|(a, _)| a.parse::<u32>().ok())
        .is_some_and(|major| major < 5)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("catalog lists no engine versions")]
    Empty,
    #[error("engine version {0:?} is not of the form X.Y")]
    BadEngineVersion(String),
    #[error("engine version {0} is listed twice")]
    DuplicateEngine(String),
    #[error("engine versions must be listed oldest first: {later} before {earlier}")]
    EnginesOutOfOrder { earlier: String, later: String },
    #[error("engine version {0} lists no kernel versions")]
    NoKernels(String),
    #[error("kernel version {kernel:?} of engine {engine}: {reason}")]
    BadKernelVersion {
        engine: String,
        kernel: String,
        reason: String,
    },
    #[error("kernel version {kernel} is listed twice")]
    DuplicateKernel { kernel: String },
    #[error("kernel version {kernel}: release date {date:?} is not YYYY-MM-DD or is before the build date")]
    BadReleaseDate { kernel: String, date: String },
    #[error("kernel version {kernel}: release note is empty or longer than {MAX_RELEASE_NOTE_LEN} bytes")]
    BadReleaseNote { kernel: String },
    #[error("kernel version {kernel} of engine {engine} is not newer than {previous} (release date and build date must both increase)")]
    NotNewer {
        engine: String,
        kernel: String,
        previous: String,
    },
    #[error("unknown engine version {0}")]
    UnknownEngine(String),
    #[error("kernel version {kernel} is not a kernel of engine {engine}")]
    UnknownKernel { engine: String, kernel: String },
    /// The vendor's `InvalidKernelReleaseNotes`.
    #[error("The format of specified KernelVersion is invalid.")]
    InvalidKernelVersion,
}

/// The validated kernel catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    engines: Vec<EngineKernels>,
    /// kernel version → (engine index, position).
    index: BTreeMap<String, (usize, usize)>,
}

impl Catalog {
    /// The catalog compiled into ddsd (`data/kernels.json`).
    pub fn embedded() -> Catalog {
        // The embedded file is checked by a unit test, so this cannot fail in a built binary.
        Catalog::from_json(EMBEDDED_KERNELS_JSON).expect("embedded data/kernels.json is valid")
    }

    /// Loads and validates a catalog file's contents.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|e| CatalogError::Json(e.to_string()))?;
        if file.engines.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut catalog = Catalog {
            engines: Vec::with_capacity(file.engines.len()),
            index: BTreeMap::new(),
        };
        for engine in file.engines {
            if !valid_engine_version(&engine.engine_version) {
                return Err(CatalogError::BadEngineVersion(engine.engine_version));
            }
            if let Some(prev) = catalog.engines.last() {
                if prev.engine_version == engine.engine_version {
                    return Err(CatalogError::DuplicateEngine(engine.engine_version));
                }
                if engine_key(&prev.engine_version) > engine_key(&engine.engine_version) {
                    return Err(if catalog.engine_index(&engine.engine_version).is_some() {
                        CatalogError::DuplicateEngine(engine.engine_version)
                    } else {
                        CatalogError::EnginesOutOfOrder {
                            earlier: engine.engine_version,
                            later: prev.engine_version.clone(),
                        }
                    });
                }
            }
            if engine.kernels.is_empty() {
                return Err(CatalogError::NoKernels(engine.engine_version));
            }
            catalog.engines.push(EngineKernels {
                engine_version: engine.engine_version.clone(),
                kernels: Vec::with_capacity(engine.kernels.len()),
            });
            for release in engine.kernels {
                catalog.publish(&engine.engine_version, release)?;
            }
        }
        Ok(catalog)
    }

    /// The catalog in the file format [`Catalog::from_json`] reads (for persisting published kernels).
    pub fn to_json(&self) -> String {
        let file = CatalogFile {
            engines: self.engines.clone(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Engine versions, oldest first.
    pub fn engine_versions(&self) -> impl Iterator<Item = &str> + '_ {
        self.engines.iter().map(|e| e.engine_version.as_str())
    }

    /// The kernels of an engine, oldest first; `None` for an unknown engine.
    pub fn kernels(&self, engine_version: &str) -> Option<&[KernelRelease]> {
        self.engine_index(engine_version)
            .map(|i| self.engines[i].kernels.as_slice())
    }

    /// The newest kernel of an engine (the target of `UpgradeDBInstanceKernelVersion`).
    pub fn newest(&self, engine_version: &str) -> Option<&KernelRelease> {
        self.kernels(engine_version).and_then(|k| k.last())
    }

    /// Which engine a catalogued kernel belongs to, and its position there (0 = oldest).
    pub fn position(&self, kernel_version: &str) -> Option<(&str, usize)> {
        self.index
            .get(kernel_version)
            .map(|&(e, i)| (self.engines[e].engine_version.as_str(), i))
    }

    /// A kernel's position within its engine; the ordering `Instance::current_kernel_version` wants.
    pub fn ordinal(&self, kernel_version: &str) -> Option<usize> {
        self.position(kernel_version).map(|(_, i)| i)
    }

    pub fn release(&self, kernel_version: &str) -> Option<&KernelRelease> {
        self.index
            .get(kernel_version)
            .map(|&(e, i)| &self.engines[e].kernels[i])
    }

    /// Whether `a` is newer than `b`. `None` unless both are catalogued kernels of the same engine: kernels
    /// of different engines are not minor versions of each other.
    pub fn is_newer(&self, a: &str, b: &str) -> Option<bool> {
        let (&(ea, ia), &(eb, ib)) = (self.index.get(a)?, self.index.get(b)?);
        (ea == eb).then_some(ia > ib)
    }

    /// Release notes of the versions later than `kernel_version` (`DescribeKernelReleaseNotes`), oldest first.
    ///
    /// A catalogued kernel gets the later kernels of its engine. A well-formed kernel the catalog does not
    /// know (an old build, or one from another catalog) gets every kernel of the same format with a later
    /// build time — restricted to its engine for the versioned format, which names the engine. A malformed
    /// string is the vendor's `InvalidKernelReleaseNotes`.
    pub fn releases_after(
        &self,
        kernel_version: &str,
    ) -> Result<Vec<&KernelRelease>, CatalogError> {
        let parsed =
            parse_kernel_version(kernel_version).map_err(|_| CatalogError::InvalidKernelVersion)?;
        if let Some(&(e, i)) = self.index.get(kernel_version) {
            return Ok(self.engines[e].kernels[i + 1..].iter().collect());
        }
        let engine = parsed.engine_version();
        Ok(self
            .engines
            .iter()
            .filter(|e| match &engine {
                Some(engine) => &e.engine_version == engine,
                None => engine_uses_legacy(&e.engine_version),
            })
            .flat_map(|e| e.kernels.iter())
            .filter(|k| {
                parse_kernel_version(&k.kernel_version)
                    .is_ok_and(|p| p.format == parsed.format && p.build > parsed.build)
            })
            .collect())
    }

    /// The kernels an instance of `engine_version` running `current` could be upgraded to, oldest first
    /// (empty when `current` is the newest). A well-formed `current` the catalog does not know is placed by
    /// its build time.
    pub fn available_upgrades(
        &self,
        engine_version: &str,
        current: &str,
    ) -> Result<&[KernelRelease], CatalogError> {
        let e = self
            .engine_index(engine_version)
            .ok_or_else(|| CatalogError::UnknownEngine(engine_version.to_string()))?;
        let kernels = &self.engines[e].kernels;
        if let Some(&(ke, i)) = self.index.get(current) {
            if ke != e {
                return Err(CatalogError::UnknownKernel {
                    engine: engine_version.to_string(),
                    kernel: current.to_string(),
                });
            }
            return Ok(&kernels[i + 1..]);
        }
        let parsed =
            parse_kernel_version(current).map_err(|_| CatalogError::InvalidKernelVersion)?;
        let fits = match parsed.engine_version() {
            Some(engine) => engine == engine_version,
            None => engine_uses_legacy(engine_version),
        };
        if !fits {
            return Err(CatalogError::UnknownKernel {
                engine: engine_version.to_string(),
                kernel: current.to_string(),
            });
        }
        let first_newer = kernels
            .iter()
            .position(|k| {
                parse_kernel_version(&k.kernel_version).is_ok_and(|p| p.build > parsed.build)
            })
            .unwrap_or(kernels.len());
        Ok(&kernels[first_newer..])
    }

    /// Adds a kernel to an existing engine. It must be well formed for that engine, not yet catalogued, and
    /// newer than the engine's newest kernel by both release date and build time.
    pub fn publish(
        &mut self,
        engine_version: &str,
        release: KernelRelease,
    ) -> Result<(), CatalogError> {
        let e = self
            .engine_index(engine_version)
            .ok_or_else(|| CatalogError::UnknownEngine(engine_version.to_string()))?;
        let bad = |reason: &str| CatalogError::BadKernelVersion {
            engine: engine_version.to_string(),
            kernel: release
                .kernel_version
                .chars()
                .take(MAX_KERNEL_VERSION_LEN)
                .collect(),
            reason: reason.to_string(),
        };
        let parsed = parse_kernel_version(&release.kernel_version).map_err(|e| bad(e.0))?;
        let legacy = engine_uses_legacy(engine_version);
        match (legacy, parsed.format) {
            (true, KernelFormat::Versioned) => {
                return Err(bad("engines before 5.0 use mongodb_YYYYMMDD_X.Y.Z"))
            }
            (false, KernelFormat::Legacy) => {
                return Err(bad("engines 5.0 and later use X.Y.Z-YYYYMMDDhhmmss_N"))
            }
            (false, KernelFormat::Versioned)
                if parsed.engine_version().as_deref() != Some(engine_version) =>
            {
                return Err(bad("X.Y does not match the engine version"))
            }
            _ => {}
        }
        if self.index.contains_key(&release.kernel_version) {
            return Err(CatalogError::DuplicateKernel {
                kernel: release.kernel_version,
            });
        }
        let released = parse_release_date(&release.release_date)
            .filter(|&d| d >= u64::from(parsed.build_date()))
            .ok_or_else(|| CatalogError::BadReleaseDate {
                kernel: release.kernel_version.clone(),
                date: release.release_date.chars().take(32).collect(),
            })?;
        if release.release_note.trim().is_empty()
            || release.release_note.len() > MAX_RELEASE_NOTE_LEN
        {
            return Err(CatalogError::BadReleaseNote {
                kernel: release.kernel_version,
            });
        }
        let kernels = &mut self.engines[e].kernels;
        if let Some(prev) = kernels.last() {
            // Entries already in the catalog were validated, so these parse.
            let prev_build = parse_kernel_version(&prev.kernel_version)
                .map(|p| p.build)
                .unwrap_or(0);
            let prev_released = parse_release_date(&prev.release_date).unwrap_or(0);
            if parsed.build <= prev_build || released <= prev_released {
                return Err(CatalogError::NotNewer {
                    engine: engine_version.to_string(),
                    kernel: release.kernel_version,
                    previous: prev.kernel_version.clone(),
                });
            }
        }
        self.index
            .insert(release.kernel_version.clone(), (e, kernels.len()));
        kernels.push(release);
        Ok(())
    }

    fn engine_index(&self, engine_version: &str) -> Option<usize> {
        self.engines
            .iter()
            .position(|e| e.engine_version == engine_version)
    }
}

/// Numeric order of `X.Y` engine versions (`4.10` after `4.4`).
fn engine_key(s: &str) -> (u32, u32) {
    s.split_once('.')
        .map(|(a, b)| (a.parse().unwrap_or(0), b.parse().unwrap_or(0)))
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINES: [&str; 7] = ["4.0", "4.2", "4.4", "5.0", "6.0", "7.0", "8.0"];

    fn release(kernel: &str, date: &str) -> KernelRelease {
        KernelRelease {
            kernel_version: kernel.to_string(),
            release_date: date.to_string(),
            release_note: "Fixes things.".to_string(),
        }
    }

    fn small_catalog_json(kernels: &str) -> String {
        format!(r#"{{"engines":[{{"engine_version":"5.0","kernels":[{kernels}]}}]}}"#)
    }

    #[test]
    fn embedded_catalog_covers_every_engine_in_order() {
        let c = Catalog::embedded();
        assert_eq!(c.engine_versions().collect::<Vec<_>>(), ENGINES);
        for engine in ENGINES {
            let kernels = c.kernels(engine).unwrap();
            assert!(kernels.len() >= 4, "{engine}");
            let legacy = engine_uses_legacy(engine);
            let mut last_build = 0;
            for (i, k) in kernels.iter().enumerate() {
                let p = parse_kernel_version(&k.kernel_version).unwrap();
                assert_eq!(
                    p.format == KernelFormat::Legacy,
                    legacy,
                    "{}",
                    k.kernel_version
                );
                assert!(p.build > last_build);
                last_build = p.build;
                assert_eq!(c.position(&k.kernel_version), Some((engine, i)));
                assert!(
                    k.release_note.len() > 40,
                    "{} needs a real note",
                    k.kernel_version
                );
            }
            assert_eq!(c.newest(engine), kernels.last());
        }
        // The vendor's documented samples are catalogued under the right engines.
        assert_eq!(c.position("mongodb_20220518_4.0.21").unwrap().0, "4.0");
        assert_eq!(c.position("5.0.5-20220721143518_0").unwrap().0, "5.0");
        assert!(c.kernels("3.4").is_none());
        assert!(c.newest("9.0").is_none());
    }

    #[test]
    fn catalog_round_trips_through_its_file_format() {
        let c = Catalog::embedded();
        assert_eq!(Catalog::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn kernel_version_formats() {
        let p = parse_kernel_version("mongodb_20220518_4.0.21").unwrap();
        assert_eq!(p.format, KernelFormat::Legacy);
        assert_eq!(p.build_date(), 20220518);
        assert_eq!(p.release, (4, 0, 21));
        assert_eq!(p.engine_version(), None);
        let p = parse_kernel_version("5.0.5-20220721143518_0").unwrap();
        assert_eq!(p.format, KernelFormat::Versioned);
        assert_eq!(p.build, 20220721143518);
        assert_eq!(p.engine_version().as_deref(), Some("5.0"));
        for ok in [
            "mongodb_20180522_0.4.8",
            "mongodb_20240229_4.4.1",
            "8.0.12-20251015093301_12",
        ] {
            assert!(is_valid_kernel_version(ok), "{ok}");
        }
        for bad in [
            "",
            "mongodb_2022051_4.0.21",
            "mongodb_20220532_4.0.21",
            "mongodb_20230229_4.0.21",
            "mongodb_20220518_4.0",
            "mongodb_20220518_4.0.21.1",
            "mongodb_20220518_04.0.21",
            "mongodb_20220518-4.0.21",
            "MongoDB_20220518_4.0.21",
            "5.0.5-20220721243518_0",
            "5.0.5-20220721143560_0",
            "5.0.5-2022072114351_0",
            "5.0.5-20220721143518",
            "5.0.5-20220721143518_",
            "5.0.5-20220721143518_0000",
            "5.0-20220721143518_0",
            "4.4.1",
            "latest",
            "mongodb_２０２２0518_4.0.21",
        ] {
            assert!(!is_valid_kernel_version(bad), "{bad}");
        }
        assert!(!is_valid_kernel_version(&"9".repeat(200)));
    }

    #[test]
    fn newer_and_upgrades() {
        let c = Catalog::embedded();
        let k40 = c.kernels("4.0").unwrap();
        assert_eq!(
            c.is_newer(&k40[2].kernel_version, &k40[1].kernel_version),
            Some(true)
        );
        assert_eq!(
            c.is_newer(&k40[1].kernel_version, &k40[2].kernel_version),
            Some(false)
        );
        assert_eq!(
            c.is_newer(&k40[1].kernel_version, &k40[1].kernel_version),
            Some(false)
        );
        let k50 = &c.kernels("5.0").unwrap()[0].kernel_version;
        assert_eq!(c.is_newer(k50, &k40[0].kernel_version), None);
        assert_eq!(
            c.is_newer("mongodb_20990101_9.9.9", &k40[0].kernel_version),
            None
        );

        let ups = c.available_upgrades("4.0", &k40[1].kernel_version).unwrap();
        assert_eq!(ups, &k40[2..]);
        assert!(c
            .available_upgrades("4.0", &k40.last().unwrap().kernel_version)
            .unwrap()
            .is_empty());
        // An uncatalogued but well-formed kernel is placed by its build date.
        let ups = c
            .available_upgrades("4.0", "mongodb_20210101_4.0.15")
            .unwrap();
        assert_eq!(ups[0].kernel_version, "mongodb_20210625_4.0.18");
        assert_eq!(
            c.available_upgrades("4.0", k50),
            Err(CatalogError::UnknownKernel {
                engine: "4.0".into(),
                kernel: k50.clone()
            })
        );
        assert!(matches!(
            c.available_upgrades("5.0", "6.0.3-20230105113021_0"),
            Err(CatalogError::UnknownKernel { .. })
        ));
        assert_eq!(
            c.available_upgrades("3.4", &k40[0].kernel_version),
            Err(CatalogError::UnknownEngine("3.4".into()))
        );
        assert_eq!(
            c.available_upgrades("4.0", "garbage"),
            Err(CatalogError::InvalidKernelVersion)
        );
    }

    #[test]
    fn release_notes_after_a_version() {
        let c = Catalog::embedded();
        let k44 = c.kernels("4.4").unwrap();
        let after: Vec<_> = c
            .releases_after(&k44[1].kernel_version)
            .unwrap()
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(after, &k44[2..]);
        assert!(c
            .releases_after(&k44.last().unwrap().kernel_version)
            .unwrap()
            .is_empty());
        // The vendor's documented example request: an old legacy kernel gets every later legacy kernel.
        let all_legacy = c.releases_after("mongodb_20180522_0.4.8").unwrap();
        let legacy_total: usize = ["4.0", "4.2", "4.4"]
            .iter()
            .map(|e| c.kernels(e).unwrap().len())
            .sum();
        assert_eq!(all_legacy.len(), legacy_total);
        assert!(all_legacy.iter().all(
            |k| parse_kernel_version(&k.kernel_version).unwrap().format == KernelFormat::Legacy
        ));
        // An uncatalogued versioned kernel stays within its engine.
        let after = c.releases_after("6.0.5-20230301000000_0").unwrap();
        assert_eq!(after.len(), 3);
        assert!(after.iter().all(|k| k.kernel_version.starts_with("6.0.")));
        assert_eq!(
            c.releases_after("4.0.21"),
            Err(CatalogError::InvalidKernelVersion)
        );
    }

    #[test]
    fn publish_only_accepts_a_newer_well_formed_kernel() {
        let mut c = Catalog::embedded();
        let newest = c.newest("5.0").unwrap().clone();
        let ok = release("5.0.24-20240601120000_0", "2024-06-11");
        c.publish("5.0", ok.clone()).unwrap();
        assert_eq!(c.newest("5.0"), Some(&ok));
        assert_eq!(
            c.is_newer(&ok.kernel_version, &newest.kernel_version),
            Some(true)
        );
        assert_eq!(
            c.available_upgrades("5.0", &newest.kernel_version).unwrap(),
            std::slice::from_ref(&ok)
        );

        let err =
            |c: &mut Catalog, engine: &str, r: KernelRelease| c.publish(engine, r).unwrap_err();
        assert!(matches!(
            err(&mut c, "5.0", ok.clone()),
            CatalogError::DuplicateKernel { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "5.0",
                release("5.0.23-20240501120000_0", "2024-06-20")
            ),
            CatalogError::NotNewer { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "5.0",
                release("5.0.25-20240605120000_0", "2024-06-10")
            ),
            CatalogError::NotNewer { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "5.0",
                release("6.0.25-20240701120000_0", "2024-07-10")
            ),
            CatalogError::BadKernelVersion { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "5.0",
                release("mongodb_20240701_5.0.1", "2024-07-10")
            ),
            CatalogError::BadKernelVersion { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "4.4",
                release("4.4.30-20240701120000_0", "2024-07-10")
            ),
            CatalogError::BadKernelVersion { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "5.0",
                release("5.0.25-20240701120000_0", "2024-06-30")
            ),
            CatalogError::BadReleaseDate { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "5.0",
                release("5.0.25-20240701120000_0", "2024/07/10")
            ),
            CatalogError::BadReleaseDate { .. }
        ));
        let mut empty_note = release("5.0.25-20240701120000_0", "2024-07-10");
        empty_note.release_note = "  ".into();
        assert!(matches!(
            err(&mut c, "5.0", empty_note),
            CatalogError::BadReleaseNote { .. }
        ));
        assert!(matches!(
            err(
                &mut c,
                "9.0",
                release("9.0.1-20300101000000_0", "2030-01-02")
            ),
            CatalogError::UnknownEngine(_)
        ));
        // Failed publishes changed nothing.
        assert_eq!(c.newest("5.0"), Some(&ok));
    }

    #[test]
    fn loading_rejects_bad_catalogs_with_a_clear_error() {
        let k = |v: &str, d: &str| {
            format!(r#"{{"kernel_version":"{v}","release_date":"{d}","release_note":"n"}}"#)
        };
        let good = small_catalog_json(
            &[
                k("5.0.1-20210101000000_0", "2021-01-02"),
                k("5.0.2-20210201000000_0", "2021-02-02"),
            ]
            .join(","),
        );
        assert!(Catalog::from_json(&good).is_ok());

        let out_of_order = small_catalog_json(
            &[
                k("5.0.2-20210201000000_0", "2021-02-02"),
                k("5.0.1-20210101000000_0", "2021-01-02"),
            ]
            .join(","),
        );
        let e = Catalog::from_json(&out_of_order).unwrap_err();
        assert!(matches!(e, CatalogError::NotNewer { .. }), "{e}");
        assert!(e.to_string().contains("5.0.1-20210101000000_0"));

        let dup = small_catalog_json(
            &[
                k("5.0.1-20210101000000_0", "2021-01-02"),
                k("5.0.1-20210101000000_0", "2021-01-03"),
            ]
            .join(","),
        );
        assert!(matches!(
            Catalog::from_json(&dup),
            Err(CatalogError::DuplicateKernel { .. })
        ));

        let malformed = small_catalog_json(&k("5.0.1-2021010100000_0", "2021-01-02"));
        let e = Catalog::from_json(&malformed).unwrap_err();
        assert!(matches!(e, CatalogError::BadKernelVersion { .. }), "{e}");

        assert!(matches!(
            Catalog::from_json(&small_catalog_json("")),
            Err(CatalogError::NoKernels(_))
        ));
        assert!(matches!(
            Catalog::from_json("{}"),
            Err(CatalogError::Json(_))
        ));
        assert!(matches!(
            Catalog::from_json("not json"),
            Err(CatalogError::Json(_))
        ));
        assert!(matches!(
            Catalog::from_json(r#"{"engines":[]}"#),
            Err(CatalogError::Empty)
        ));
        let two = |a: &str, b: &str| {
            format!(
                r#"{{"engines":[{{"engine_version":"{a}","kernels":[{}]}},{{"engine_version":"{b}","kernels":[{}]}}]}}"#,
                k("mongodb_20210101_4.0.1", "2021-01-02"),
                k("mongodb_20210201_4.2.1", "2021-02-02")
            )
        };
        assert!(Catalog::from_json(&two("4.0", "4.2")).is_ok());
        assert!(matches!(
            Catalog::from_json(&two("4.2", "4.0")),
            Err(CatalogError::EnginesOutOfOrder { .. })
        ));
        assert!(matches!(
            Catalog::from_json(&two("4.0", "4.0")),
            Err(CatalogError::DuplicateEngine(_))
        ));
        assert!(matches!(
            Catalog::from_json(&two("4.0", "four")),
            Err(CatalogError::BadEngineVersion(_))
        ));
    }
}
