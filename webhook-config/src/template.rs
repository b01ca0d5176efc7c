//! The placeholder engine behind the manifest templates.
//!
//! A template is a YAML file whose string values may hold `${name}`
//! placeholders. The file is parsed first and placeholders are replaced in
//! the parsed tree, so a substituted value can never change the document's
//! structure (no YAML injection through an image name): at worst the
//! serializer quotes it.
//!
//! - A value that is exactly `${name}` takes the parameter's typed value
//!   (a number stays a number), or disappears with its key (or list item)
//!   when the parameter is [`Param::Omit`].
//! - A placeholder inside a longer string is replaced by the parameter's text.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::Error;

/// What a placeholder becomes.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    /// This value.
    Value(Value),
    /// Nothing: the key (or list item) holding the placeholder is removed.
    Omit,
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Value(Value::String(s.to_owned()))
    }
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Value(Value::String(s))
    }
}

impl From<u32> for Param {
    fn from(n: u32) -> Self {
        Param::Value(Value::Number(n.into()))
    }
}

/// The parameters of one render, by placeholder name.
pub(crate) type Params = BTreeMap<&'static str, Param>;

/// Parse `text` (one or more YAML documents) and substitute `params`.
pub(crate) fn render(file: &'static str, text: &str, params: &Params) -> Result<Vec<Value>, Error> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| Error::Template {
            file,
            reason: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let substituted =
            substitute(value, params).map_err(|reason| Error::Template { file, reason })?;
        if let Some(document) = substituted {
            documents.push(document);
        }
    }
    Ok(documents)
}

/// Substitute in one value; `None` when the value is an omitted placeholder.
fn substitute(value: Value, params: &Params) -> Result<Option<Value>, String> {
    match value {
        Value::String(s) => substitute_string(&s, params),
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(item) = substitute(item, params)? {
                    out.push(item);
                }
            }
            Ok(Some(Value::Sequence(out)))
        }
        Value::Mapping(mapping) => {
            let mut out = Mapping::with_capacity(mapping.len());
            let was_empty = mapping.is_empty();
            for (key, item) in mapping {
                if key.as_str().is_some_and(|k| k.contains("${")) {
                    return Err(format!("placeholders are not allowed in keys ({key:?})"));
                }
                if let Some(item) = substitute(item, params)? {
                    out.insert(key, item);
                }
            }
            // A map emptied by omissions (annotations with nothing to say)
            // goes too; a map written empty (`selfSigned: {}`) stays.
            if out.is_empty() && !was_empty {
                return Ok(None);
            }
            Ok(Some(Value::Mapping(out)))
        }
        Value::Tagged(tagged) => Err(format!(
            "YAML tags are not used in templates ({})",
            tagged.tag
        )),
        other => Ok(Some(other)),
    }
}

fn substitute_string(s: &str, params: &Params) -> Result<Option<Value>, String> {
    if let Some(name) = whole_placeholder(s) {
        return match lookup(name, params)? {
            Param::Value(v) => Ok(Some(v.clone())),
            Param::Omit => Ok(None),
        };
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated placeholder in {s:?}"))?;
        let name = &after[..end];
        match lookup(name, params)? {
            Param::Value(Value::String(text)) => out.push_str(text),
            Param::Value(Value::Number(n)) => out.push_str(&n.to_string()),
            Param::Value(_) | Param::Omit => {
                return Err(format!(
                    "placeholder ${{{name}}} inside {s:?} must be text or a number"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(Value::String(out)))
}

/// `name` when `s` is exactly `${name}`.
fn whole_placeholder(s: &str) -> Option<&str> {
    let name = s.strip_prefix("${")?.strip_suffix('}')?;
    (!name.contains(['$', '{', '}'])).then_some(name)
}

fn lookup<'p>(name: &str, params: &'p Params) -> Result<&'p Param, String> {
    params
        .get(name)
        .ok_or_else(|| format!("unknown placeholder ${{{name}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let mut p = Params::new();
        p.insert("name", "x".into());
        p.insert("count", 3u32.into());
        p.insert("gone", Param::Omit);
        p.insert("evil", "a\n---\nkind: Secret # {x: [y]}".into());
        p
    }

    fn render_one(text: &str) -> Result<Value, Error> {
        render("test.yaml", text, &params())?
            .pop()
            .ok_or(Error::Template {
                file: "test.yaml",
                reason: "no document".to_owned(),
            })
    }

    #[test]
    fn whole_placeholders_keep_their_type_and_embedded_ones_interpolate() -> Result<(), Error> {
        let v = render_one("a: ${count}\nb: pre-${name}-${count}\nc: ${name}\n")?;
        assert_eq!(v["a"], Value::Number(3.into()));
        assert_eq!(v["b"], Value::String("pre-x-3".into()));
        assert_eq!(v["c"], Value::String("x".into()));
        Ok(())
    }

    #[test]
    fn omitted_placeholders_remove_their_key_item_and_emptied_maps() -> Result<(), Error> {
        let v = render_one("a: ${gone}\nb: [1, '${gone}', 2]\nc:\n  d: ${gone}\ne: {}\n")?;
        assert!(v.get("a").is_none());
        assert_eq!(v["b"].as_sequence().map(Vec::len), Some(2));
        assert!(v.get("c").is_none());
        assert_eq!(v["e"], Value::Mapping(Mapping::new()));
        Ok(())
    }

    #[test]
    fn a_hostile_value_stays_one_string() -> Result<(), Error> {
        let v = render_one("image: ${evil}\nargs:\n  - --image=${evil}\n")?;
        let text = serde_yaml::to_string(&v)?;
        let back: Value = serde_yaml::from_str(&text)?;
        assert_eq!(back, v);
        assert_eq!(v["image"].as_str(), Some("a\n---\nkind: Secret # {x: [y]}"));
        assert_eq!(back.as_mapping().map(Mapping::len), Some(2));
        Ok(())
    }

    #[test]
    fn template_mistakes_are_errors() {
        for text in [
            "a: ${missing}\n",
            "a: b-${missing}\n",
            "a: b-${name\n",
            "a: b-${gone}\n",
            "${name}: a\n",
            "a: !tag b\n",
            "a: [unclosed\n",
        ] {
            assert!(
                matches!(
                    render("t.yaml", text, &params()),
                    Err(Error::Template { .. })
                ),
                "{text:?} should be a template error"
            );
        }
    }
}
