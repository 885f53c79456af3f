//! The job file as TOML gives it: every entry as one flat table of optional fields, each with its
//! position in the file. Which fields an entry may have depends on its `type`; `build` checks that.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A table of `name = "text"` entries in the order the file gives them, each value with its position.
#[derive(Debug, Default)]
pub(super) struct Table(pub Vec<(String, Spanned<String>)>);

impl Table {
    pub fn iter(&self) -> impl Iterator<Item = &(String, Spanned<String>)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Table, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = Table;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of name = \"text\" entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Table, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Spanned<String>>()? {
                    entries.push((key, value));
                }
                Ok(Table(entries))
            }
        }
        deserializer.deserialize_map(TableVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub job: Option<Spanned<RawJob>>,
    #[serde(default)]
    pub source: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    pub operator: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    pub sink: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    pub name: Option<Spanned<String>>,
    pub parallelism: Option<Spanned<i64>>,
    pub max_parallelism: Option<Spanned<i64>>,
    pub restart: Option<Spanned<RawRestart>>,
    pub checkpoints: Option<Spanned<RawCheckpoints>>,
}

/// `[job.checkpoints]`: how often the JobMaster takes checkpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheckpoints {
    pub interval: Spanned<RawDuration>,
    pub timeout: Option<Spanned<RawDuration>>,
    pub min_pause: Option<Spanned<RawDuration>>,
    pub retained: Option<Spanned<i64>>,
    pub tolerable_failures: Option<Spanned<i64>>,
}

/// `[job.restart]`: what the JobMaster does when the job fails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRestart {
    pub strategy: Spanned<String>,
    pub attempts: Option<Spanned<i64>>,
    pub delay: Option<Spanned<RawDuration>>,
    pub initial: Option<Spanned<RawDuration>>,
    pub max: Option<Spanned<RawDuration>>,
    pub multiplier: Option<Spanned<i64>>,
}

/// A duration: an integer of milliseconds, or a string with a unit (`"500ms"`, `"2s"`, `"1min"`, `"1h"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDuration {
    Millis(i64),
    Text(String),
}

/// One name or a list of names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawNames {
    One(String),
    Many(Vec<String>),
}

impl RawNames {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            RawNames::One(s) => vec![s.clone()],
            RawNames::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEntry {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub input: Option<Spanned<RawNames>>,
    pub parallelism: Option<Spanned<i64>>,
    pub partitioning: Option<Spanned<String>>,
    /// Labels a TaskManager must carry to run this entry (`{ tier = "edge" }`).
    pub placement: Option<Spanned<Table>>,

    // generator
    pub count: Option<Spanned<i64>>,
    pub rate: Option<Spanned<i64>>,
    pub keys: Option<Spanned<i64>>,
    pub values: Option<Spanned<i64>>,
    pub records_per_ms: Option<Spanned<i64>>,
    pub start_ms: Option<Spanned<i64>>,

    // event time of a source
    pub event_time: Option<Spanned<String>>,
    pub out_of_orderness: Option<Spanned<RawDuration>>,

    // file source and sinks
    pub path: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub header: Option<Spanned<bool>>,
    pub bad_lines: Option<Spanned<String>>,
    pub schema: Option<Spanned<Table>>,

    // filter
    pub predicate: Option<Spanned<String>>,

    // map
    pub keep: Option<Spanned<Vec<Spanned<String>>>>,
    pub drop: Option<Spanned<Vec<Spanned<String>>>>,
    pub compute: Option<Spanned<Table>>,

    // key_by
    pub key: Option<Spanned<RawNames>>,

    // window and aggregate
    pub window: Option<Spanned<String>>,
    pub size: Option<Spanned<RawDuration>>,
    pub slide: Option<Spanned<RawDuration>>,
    pub gap: Option<Spanned<RawDuration>>,
    pub late: Option<Spanned<String>>,
    pub aggregates: Option<Spanned<Table>>,
}

impl RawEntry {
    /// The fields that are set, by name, with their positions (for "does not apply" errors).
    pub fn set_fields(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => {
                $(if let Some(v) = &self.$field { out.push((stringify!($field), v.span())); })*
            };
        }
        check!(
            placement,
            count,
            rate,
            keys,
            values,
            records_per_ms,
            start_ms,
            event_time,
            out_of_orderness,
            path,
            format,
            header,
            bad_lines,
            schema,
            predicate,
            keep,
            drop,
            compute,
            key,
            window,
            size,
            slide,
            gap,
            late,
            aggregates
        );
        out
    }
}
