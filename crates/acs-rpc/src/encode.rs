//! Response bodies: success and error envelopes in JSON or XML.
//!
//! Handlers build one `serde_json::Value` object; XML is derived from it with the vendor's list
//! rule (an array under key `K` becomes repeated `<K>` elements), so
//! `{"Regions":{"DdsRegion":[a,b]}}` is `<Regions><DdsRegion>a</DdsRegion><DdsRegion>b</DdsRegion></Regions>`.
//! Content types are exactly `application/json;charset=utf-8` and `text/xml;charset=utf-8`: the
//! Tea SDKs parse XML only when the content type is that exact string.

use serde_json::{Map, Value};

use crate::params::percent_encode;
use crate::RpcError;

/// Response format, from `Format` (case-insensitive) or, for V3, the `accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `JSON` / `XML` in any case; anything else is `None`.
    pub fn parse(value: &str) -> Option<Format> {
        if value.eq_ignore_ascii_case("json") {
            Some(Format::Json)
        } else if value.eq_ignore_ascii_case("xml") {
            Some(Format::Xml)
        } else {
            None
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json;charset=utf-8",
            Format::Xml => "text/xml;charset=utf-8",
        }
    }
}

/// An encoded response, ready for any HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

const XML_DECL: &str = "<?xml version='1.0' encoding='UTF-8'?>";

/// A 200 response: `RequestId` first, then the fields of `body` (which must be an object; any
/// `RequestId` it carries is replaced). XML root is `<{action}Response>`.
pub fn encode_success(action: &str, request_id: &str, body: &Value, format: Format) -> Encoded {
    // Written straight from the handler's value: copying it into a new map first would clone
    // every field of every response (measured: a tenth of a DescribeDBInstanceAttribute).
    let fields = match body {
        Value::Object(fields) => Some(fields),
        _ => None,
    };
    let body = match format {
        Format::Json => {
            serde_json::to_vec(&Envelope { request_id, fields }).expect("a Value always serialises")
        }
        Format::Xml => {
            let root = format!("{}Response", xml_name(action));
            let mut out = String::with_capacity(1024);
            out.push_str(XML_DECL);
            open(&mut out, &root);
            open(&mut out, "RequestId");
            escape_into(&mut out, request_id);
            close(&mut out, "RequestId");
            for (k, v) in fields.into_iter().flatten() {
                if k != "RequestId" {
                    write_element(&mut out, &xml_name(k), v);
                }
            }
            close(&mut out, &root);
            out.into_bytes()
        }
    };
    Encoded {
        status: 200,
        content_type: format.content_type(),
        body,
    }
}

/// `{"RequestId": …, <the handler's fields but its own RequestId>}`, serialised without copying.
struct Envelope<'a> {
    request_id: &'a str,
    fields: Option<&'a Map<String, Value>>,
}

impl serde::Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("RequestId", self.request_id)?;
        for (k, v) in self.fields.into_iter().flatten() {
            if k != "RequestId" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// The error envelope `RequestId, HostId, Code, Message, Recommend` (XML root `<Error>`), with the
/// error's HTTP status.
pub fn encode_error(error: &RpcError, request_id: &str, host_id: &str, format: Format) -> Encoded {
    let recommend = format!(
        "https://error-center.aliyun.com/status/search?Keyword={}&source=PopGw",
        percent_encode(error.code())
    );
    let mut obj = Map::new();
    obj.insert("RequestId".into(), request_id.into());
    obj.insert("HostId".into(), host_id.into());
    obj.insert("Code".into(), error.code().into());
    obj.insert("Message".into(), error.message().into());
    obj.insert("Recommend".into(), recommend.into());
    let obj = Value::Object(obj);
    let body = match format {
        Format::Json => serde_json::to_vec(&obj).expect("a Value always serialises"),
        Format::Xml => {
            let mut out = String::with_capacity(256);
            out.push_str(XML_DECL);
            write_element(&mut out, "Error", &obj);
            out.into_bytes()
        }
    };
    Encoded {
        status: error.status(),
        content_type: format.content_type(),
        body,
    }
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_element(out, name, item);
            }
        }
        Value::Object(fields) => {
            open(out, name);
            for (k, v) in fields {
                write_element(out, &xml_name(k), v);
            }
            close(out, name);
        }
        Value::String(s) => {
            open(out, name);
            escape_into(out, s);
            close(out, name);
        }
        Value::Number(n) => {
            open(out, name);
            out.push_str(&n.to_string());
            close(out, name);
        }
        Value::Bool(b) => {
            open(out, name);
            out.push_str(if *b { "true" } else { "false" });
            close(out, name);
        }
        Value::Null => {
            open(out, name);
            close(out, name);
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Escapes markup characters. Characters XML 1.0 cannot carry at all (most C0 controls, which a
/// client can smuggle in through `%01`) become U+FFFD so the document stays well-formed.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Keys are vendor field names; anything that is not a valid XML name character becomes `_` so a
/// surprising key can never break the document.
fn xml_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gateway;
    use serde_json::json;

    fn regions() -> Value {
        json!({"Regions": {"DdsRegion": [
            {"RegionId": "cn-hangzhou", "Zones": {"Zone": [{"ZoneId": "cn-hangzhou-h", "VpcEnabled": true}]}},
            {"RegionId": "cn-shanghai", "Zones": {"Zone": []}}
        ]}})
    }

    #[test]
    fn golden_success_json() {
        let e = encode_success("DescribeRegions", "RID-1", &regions(), Format::Json);
        assert_eq!(
            (e.status, e.content_type),
            (200, "application/json;charset=utf-8")
        );
        assert_eq!(
            String::from_utf8(e.body).unwrap(),
            r#"{"RequestId":"RID-1","Regions":{"DdsRegion":[{"RegionId":"cn-hangzhou","Zones":{"Zone":[{"ZoneId":"cn-hangzhou-h","VpcEnabled":true}]}},{"RegionId":"cn-shanghai","Zones":{"Zone":[]}}]}}"#
        );
    }

    #[test]
    fn golden_success_xml_repeats_list_elements() {
        let e = encode_success("DescribeRegions", "RID-1", &regions(), Format::Xml);
        assert_eq!(e.content_type, "text/xml;charset=utf-8");
        assert_eq!(
            String::from_utf8(e.body).unwrap(),
            "<?xml version='1.0' encoding='UTF-8'?><DescribeRegionsResponse><RequestId>RID-1</RequestId><Regions>\
             <DdsRegion><RegionId>cn-hangzhou</RegionId><Zones><Zone><ZoneId>cn-hangzhou-h</ZoneId><VpcEnabled>true</VpcEnabled></Zone></Zones></DdsRegion>\
             <DdsRegion><RegionId>cn-shanghai</RegionId><Zones></Zones></DdsRegion>\
             </Regions></DescribeRegionsResponse>"
        );
    }

    #[test]
    fn request_id_cannot_be_overridden_and_comes_first() {
        let e = encode_success(
            "X",
            "RID",
            &json!({"A": 1, "RequestId": "evil"}),
            Format::Json,
        );
        assert_eq!(
            String::from_utf8(e.body).unwrap(),
            r#"{"RequestId":"RID","A":1}"#
        );
    }

    #[test]
    fn golden_error_json_and_xml() {
        let err = RpcError::gateway(Gateway::InvalidActionNotFound);
        let j = encode_error(&err, "RID-2", "mongodb.aliyuncs.com", Format::Json);
        assert_eq!(
            (j.status, j.content_type),
            (404, "application/json;charset=utf-8")
        );
        assert_eq!(
            String::from_utf8(j.body).unwrap(),
            r#"{"RequestId":"RID-2","HostId":"mongodb.aliyuncs.com","Code":"InvalidAction.NotFound","Message":"Specified api is not found, please check your url and method.","Recommend":"https://error-center.aliyun.com/status/search?Keyword=InvalidAction.NotFound&source=PopGw"}"#
        );
        let x = encode_error(&err, "RID-2", "mongodb.aliyuncs.com", Format::Xml);
        assert_eq!((x.status, x.content_type), (404, "text/xml;charset=utf-8"));
        assert_eq!(
            String::from_utf8(x.body).unwrap(),
            "<?xml version='1.0' encoding='UTF-8'?><Error><RequestId>RID-2</RequestId><HostId>mongodb.aliyuncs.com</HostId>\
             <Code>InvalidAction.NotFound</Code><Message>Specified api is not found, please check your url and method.</Message>\
             <Recommend>https://error-center.aliyun.com/status/search?Keyword=InvalidAction.NotFound&amp;source=PopGw</Recommend></Error>"
        );
    }

    #[test]
    fn hostile_strings_stay_well_formed() {
        let nasty = "a<b>&\"c'\u{1}]]>\u{FFFF}ä";
        let e = encode_success(
            "Act",
            "R",
            &json!({"Note": nasty, "N": null, "F": 1.5, "bad key": 1}),
            Format::Xml,
        );
        let s = String::from_utf8(e.body).unwrap();
        assert!(
            s.contains("<Note>a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}]]&gt;\u{FFFD}ä</Note>"),
            "{s}"
        );
        assert!(s.contains("<N></N><F>1.5</F><bad_key>1</bad_key>"), "{s}");
        let mut reader = quick_xml::Reader::from_str(&s);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(err) => panic!("not well-formed: {err}: {s}"),
            }
        }
    }

    #[test]
    fn format_parse_is_case_insensitive_and_strict() {
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("Xml"), Some(Format::Xml));
        assert_eq!(Format::parse("yaml"), None);
        assert_eq!(Format::parse(""), None);
    }
}
