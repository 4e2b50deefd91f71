//! JSON output that matches Go's `json.MarshalIndent(v, "", "    ")`, which
//! is what the reference plugins print: four-space indent, `"key": value`,
//! and `<`, `>`, `&`, U+2028, U+2029 escaped as `\uXXXX`.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

struct GoFormatter<'a>(PrettyFormatter<'a>);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name<W: ?Sized + io::Write>(&mut self, writer: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            self.0.$name(writer $(, $arg)*)
        })*
    };
}

impl Formatter for GoFormatter<'_> {
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()> {
        self.0.write_char_escape(writer, escape)
    }
}

/// Serializes like Go's MarshalIndent with a four-space indent.
pub fn to_go_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(256);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, GoFormatter(PrettyFormatter::with_indent(b"    ")));
    value.serialize(&mut serializer).expect("serializing to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_go_marshal_indent() {
        let value = json!({"cniVersion": "1.0.0", "ips": [{"interface": 0, "address": "10.0.0.2/24"}], "dns": {}});
        assert_eq!(
            to_go_pretty(&value),
            "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"interface\": 0,\n            \"address\": \"10.0.0.2/24\"\n        }\n    ],\n    \"dns\": {}\n}"
        );
    }

    #[test]
    fn escapes_html_characters_like_go() {
        assert_eq!(to_go_pretty(&json!("a<b>&c\u{2028}")), "\"a\\u003cb\\u003e\\u0026c\\u2028\"");
    }
}
