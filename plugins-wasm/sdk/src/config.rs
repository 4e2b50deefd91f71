//! Config parsing that accepts what Go's encoding/json accepts, so every
//! config that works with the reference plugins works here:
//!
//! - object keys match struct fields case-insensitively (an exact match
//!   wins), so `"IPAM"`, `"ipam"` and `"Ipam"` are the same field;
//! - unknown keys are ignored;
//! - `null` for a field leaves it at its default.
//!
//! Derive `Deserialize` with `#[serde(default)]` and parse with [`parse`].

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde_json::Value;

use crate::error::{Error, code, error, internal};

/// Parses a request config (or any JSON) into `T`, Go style.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| error(code::DECODING_FAILURE, format!("failed to load netconf: {e}")))?;
    from_value(value)
}

/// Like [`parse`], for a value already parsed.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    // Like the reference plugins' own json.Unmarshal: an untyped error.
    T::deserialize(Lenient(value)).map_err(|e| internal(format!("failed to load netconf: {e}")))
}

/// A serde_json::Value deserializer with Go's key matching.
struct Lenient(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Lenient {
    type Deserializer = Lenient;
    fn into_deserializer(self) -> Lenient {
        self
    }
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(Lenient))),
            Value::Object(map) => {
                visitor.visit_map(MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Lenient(v)))))
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let Value::Object(map) = self.0 else {
            return Err(de::Error::invalid_type(unexpected(&self.0), &name));
        };
        // Rename keys to the field they match; later keys win, as in Go.
        let mut matched = serde_json::Map::new();
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            let field = if fields.contains(&key.as_str()) {
                key
            } else {
                match fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) {
                    Some(field) => field.to_string(),
                    None => key,
                }
            };
            matched.insert(field, value);
        }
        visitor.visit_map(MapDeserializer::new(matched.into_iter().map(|(k, v)| (k, Lenient(v)))))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// The fields every plugin config has (types.NetConf), for plugins that
/// need nothing else.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    pub ipam: Option<IpamConf>,
    pub dns: Option<Dns>,
}

/// The `ipam` object's common part: its `type`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct IpamConf {
    #[serde(rename = "type")]
    pub plugin_type: String,
}

/// The config `dns` object (types.DNS). Lists are options because the
/// reference treats an explicitly empty list as "set".
#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct Dns {
    pub nameservers: Option<Vec<String>>,
    pub domain: String,
    pub search: Option<Vec<String>>,
    pub options: Option<Vec<String>>,
}

impl Dns {
    /// The reference's dnsConfSet: any field present overrides IPAM's DNS.
    pub fn is_set(&self) -> bool {
        self.nameservers.is_some() || self.search.is_some() || self.options.is_some() || !self.domain.is_empty()
    }

    pub fn to_result(&self) -> crate::cni::Dns {
        crate::cni::Dns {
            nameservers: self.nameservers.clone().unwrap_or_default(),
            domain: (!self.domain.is_empty()).then(|| self.domain.clone()),
            search: self.search.clone().unwrap_or_default(),
            options: self.options.clone().unwrap_or_default(),
        }
    }
}

/// A route in a config (types.Route): `dst` and optional `gw`, plus the CNI
/// 1.1 extras.
#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct Route {
    pub dst: String,
    pub gw: Option<String>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

impl Route {
    pub fn to_result(&self) -> Result<crate::cni::Route, Error> {
        let dst: crate::net::IpNet = self.dst.parse().map_err(internal)?;
        let gw = match self.gw.as_deref().filter(|g| !g.is_empty()) {
            Some(text) => {
                Some(crate::net::parse_ip(text).ok_or_else(|| internal(format!("invalid IP address: {text}")))?)
            }
            None => None,
        };
        Ok(crate::cni::Route {
            dst: dst.to_wit(),
            gw: gw.map(crate::net::ip_to_wit),
            mtu: self.mtu.filter(|v| *v != 0),
            advmss: self.advmss.filter(|v| *v != 0),
            priority: self.priority.filter(|v| *v != 0),
            table: self.table,
            scope: self.scope,
        })
    }
}

/// An empty result DNS object.
pub fn no_dns() -> crate::cni::Dns {
    crate::cni::Dns { nameservers: Vec::new(), domain: None, search: Vec::new(), options: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "camelCase")]
    struct Conf {
        cni_version: String,
        data_dir: String,
        inner: Option<Inner>,
        list: Vec<Inner>,
        mtu: u32,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        #[serde(rename = "rangeStart")]
        range_start: String,
    }

    #[test]
    fn keys_match_fields_case_insensitively_at_every_depth() {
        let conf: Conf = parse(
            r#"{"CNIVERSION": "1.0.0", "datadir": "/x", "Inner": {"RANGESTART": "a"}, "list": [{"rangestart": "b"}], "extra": 1}"#,
        )
        .unwrap();
        assert_eq!(conf.cni_version, "1.0.0");
        assert_eq!(conf.data_dir, "/x");
        assert_eq!(conf.inner.unwrap().range_start, "a");
        assert_eq!(conf.list[0].range_start, "b");
    }

    #[test]
    fn later_keys_win_like_go_and_null_means_default() {
        let conf: Conf = parse(r#"{"DataDir": "/wrong", "dataDir": "/right", "mtu": null}"#).unwrap();
        assert_eq!(conf.data_dir, "/right");
        assert_eq!(conf.mtu, 0);
    }

    #[test]
    fn type_errors_are_internal_errors_like_the_reference() {
        assert_eq!(parse::<Conf>(r#"{"mtu": "big"}"#).unwrap_err().code, code::INTERNAL);
    }
}
