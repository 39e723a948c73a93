//! `ddsd bench soak --short` as a smoke test: 30 seconds of mixed signed load with upgrades and
//! restarts while ddsd is SIGKILLed and restarted twice; the soak itself checks that every
//! accepted upgrade and restart finished, that the store passes `PRAGMA integrity_check`, that no
//! 5xx or connection failure happened outside the kill windows, and that RSS stayed flat after
//! warm-up. The ten-minute run is recorded in BENCHMARKS.md.

use std::process::Command;

#[test]
fn short_soak_with_two_kills_passes_its_end_state_checks() {
    let out = Command::new(env!("CARGO_BIN_EXE_ddsd"))
        .args(["bench", "soak", "--short"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run ddsd bench soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("RESULT: PASSED"),
        "exit {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // The run did what it claims: two kills, writes accepted, a clean store.
    assert!(stdout.contains("kills: 2 "), "{stdout}");
    assert!(stdout.contains("PRAGMA integrity_check: ok"), "{stdout}");
    let upgrades = stdout
        .lines()
        .find_map(|l| l.strip_prefix("writes accepted: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(upgrades > 0, "no upgrade was accepted: {stdout}");
}
