//! From the raw TOML entries to a job graph: resolve names, order the entries so inputs come
//! first, then build each vertex, type-checking its expressions against its input's schema.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawCheckpoints, RawDuration, RawEntry, RawFile, RawRestart, Table};
use super::{error_at, JobFileError, ParseOptions};
use crate::connectors::generator::GeneratorConfig;
use crate::dataflow::operators::accumulate::{AggregateKind, AggregateSpec};
use crate::dataflow::operators::aggregate::AggregateConfig;
use crate::dataflow::operators::map::MapField;
use crate::dataflow::operators::window::{LatePolicy, WindowConfig};
use crate::dataflow::windowing::WindowKind;
use crate::expr::{self, Ast};
use crate::graph::{
    BadLinePolicy, CheckpointConfig, EventTimeSpec, FileFormat, FileSinkConfig, FileSourceConfig, JobGraph,
    JobGraphBuilder, OutputTag, Partitioning, RestartStrategy, SinkConnector, SourceConnector, VertexId,
    VertexKind,
};
use crate::jobmanager::resource_manager::check_labels;
use crate::key::KeySelector;
use crate::limits::{
    AGGREGATES_MAX, CHECKPOINTS_RETAINED_MAX, EXPRESSION_BYTES_MAX, MAX_PARALLELISM_DEFAULT,
    WINDOWS_PER_RECORD_MAX,
};
use crate::types::{DataType, EventTimeField, Field, Schema};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Source,
    Operator,
    Sink,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Source => "source",
            Section::Operator => "operator",
            Section::Sink => "sink",
        }
    }

    fn types(self) -> &'static [&'static str] {
        match self {
            Section::Source => &["generator", "file"],
            Section::Operator => &["filter", "map", "key_by", "window", "aggregate", "union"],
            Section::Sink => &["count", "stdout", "file"],
        }
    }
}

/// The fields each entry type may set, beyond name, type, input, parallelism and partitioning.
fn allowed_fields(section: Section, kind: &str) -> &'static [&'static str] {
    match (section, kind) {
        (Section::Source, "generator") => &[
            "count",
            "rate",
            "keys",
            "values",
            "records_per_ms",
            "start_ms",
            "event_time",
            "out_of_orderness",
        ],
        (Section::Source, "file") => {
            &["path", "format", "header", "bad_lines", "schema", "event_time", "out_of_orderness"]
        }
        (Section::Operator, "filter") => &["predicate"],
        (Section::Operator, "map") => &["keep", "drop", "compute"],
        (Section::Operator, "key_by") => &["key"],
        (Section::Operator, "window") => &["window", "size", "slide", "gap", "late", "aggregates"],
        (Section::Operator, "aggregate") => &["aggregates"],
        (Section::Operator, "union") => &[],
        (Section::Sink, "count") => &[],
        (Section::Sink, "stdout") => &["format"],
        (Section::Sink, "file") => &["path", "format", "header"],
        _ => &[],
    }
}

struct Entry<'a> {
    section: Section,
    raw: &'a RawEntry,
    name: String,
    name_span: Range<usize>,
    kind: String,
    /// Inputs by name, with the output they read and where the file names them.
    inputs: Vec<(String, OutputTag, Range<usize>)>,
}

struct Ctx<'t> {
    text: &'t str,
}

impl Ctx<'_> {
    fn err(&self, span: &Range<usize>, message: impl Into<String>) -> JobFileError {
        error_at(self.text, span.start, message.into())
    }

    /// Where the content of a string value starts (after its opening quotes).
    fn string_start(&self, span: &Range<usize>) -> usize {
        let rest = &self.text[span.start.min(self.text.len())..];
        let quotes = if rest.starts_with("\"\"\"") || rest.starts_with("'''") { 3 } else { 1 };
        let mut start = span.start + quotes;
        if quotes == 3 && self.text[start.min(self.text.len())..].starts_with('\n') {
            start += 1;
        }
        start
    }
}

pub(super) fn build(text: &str, raw: &RawFile, options: &ParseOptions) -> Result<JobGraph, JobFileError> {
    let ctx = Ctx { text };
    let (job_name, parallelism, max_parallelism) = job_settings(&ctx, raw, options)?;
    let entries = collect_entries(&ctx, raw)?;
    let order = order_entries(&ctx, &entries)?;
    let mut builder = JobGraphBuilder::new(&job_name, parallelism, max_parallelism).map_err(|e| {
        let span = raw.job.as_ref().map_or(0..0, |j| j.span());
        ctx.err(&span, e.message)
    })?;
    if let Some(checkpoints) = raw.job.as_ref().and_then(|j| j.get_ref().checkpoints.as_ref()) {
        builder.set_checkpoints(checkpoint_config(&ctx, checkpoints)?);
    }
    if let Some(restart) = raw.job.as_ref().and_then(|j| j.get_ref().restart.as_ref()) {
        builder.set_restart(restart_strategy(&ctx, restart)?);
    }
    for i in order {
        let entry = &entries[i];
        build_entry(&ctx, &mut builder, entry)?;
    }
    builder.build().map_err(|e| {
        let span = e
            .vertex
            .as_ref()
            .and_then(|v| entries.iter().find(|x| &x.name == v))
            .map_or(0..0, |x| x.name_span.clone());
        ctx.err(&span, e.message)
    })
}

fn job_settings(
    ctx: &Ctx<'_>,
    raw: &RawFile,
    options: &ParseOptions,
) -> Result<(String, u16, u16), JobFileError> {
    let mut name = "job".to_owned();
    let mut parallelism = 1u16;
    let mut max_parallelism = MAX_PARALLELISM_DEFAULT;
    if let Some(job) = &raw.job {
        let job = job.get_ref();
        if let Some(n) = &job.name {
            name = n.get_ref().clone();
        }
        if let Some(p) = &job.parallelism {
            parallelism = positive_u16(ctx, p, "parallelism")?;
        }
        if let Some(m) = &job.max_parallelism {
            max_parallelism = positive_u16(ctx, m, "max_parallelism")?;
        }
    }
    if let Some(p) = options.parallelism {
        parallelism = p;
    }
    Ok((name, parallelism, max_parallelism))
}

fn checkpoint_config(ctx: &Ctx<'_>, raw: &Spanned<RawCheckpoints>) -> Result<CheckpointConfig, JobFileError> {
    let r = raw.get_ref();
    let ms = |value: &Spanned<RawDuration>, field: &str| -> Result<Duration, JobFileError> {
        Ok(Duration::from_millis(duration_ms(ctx, value, field, false)? as u64))
    };
    let interval = ms(&r.interval, "interval")?;
    let timeout = match &r.timeout {
        Some(t) => ms(t, "timeout")?,
        None => CheckpointConfig::TIMEOUT_DEFAULT,
    };
    let min_pause = match &r.min_pause {
        Some(p) => Duration::from_millis(duration_ms(ctx, p, "min_pause", true)? as u64),
        None => Duration::ZERO,
    };
    let retained = match &r.retained {
        None => CheckpointConfig::RETAINED_DEFAULT,
        Some(k) => u16::try_from(*k.get_ref())
            .ok()
            .filter(|&k| (1..=CHECKPOINTS_RETAINED_MAX).contains(&k))
            .ok_or_else(|| {
                ctx.err(
                    &k.span(),
                    format!(
                        "`retained` must be a whole number from 1 to {CHECKPOINTS_RETAINED_MAX}, found {}",
                        k.get_ref()
                    ),
                )
            })?,
    };
    let tolerable_failures = match &r.tolerable_failures {
        None => 0,
        Some(n) => u32::try_from(*n.get_ref()).map_err(|_| {
            let found = n.get_ref();
            ctx.err(
                &n.span(),
                format!("`tolerable_failures` must be a whole number from 0 to {}, found {found}", u32::MAX),
            )
        })?,
    };
    Ok(CheckpointConfig { interval, timeout, min_pause, retained, tolerable_failures })
}

fn restart_strategy(ctx: &Ctx<'_>, raw: &Spanned<RawRestart>) -> Result<RestartStrategy, JobFileError> {
    let r = raw.get_ref();
    let ms =
        |value: &Option<Spanned<RawDuration>>, field: &str, default: i64| -> Result<Duration, JobFileError> {
            let ms = match value {
                Some(v) => duration_ms(ctx, v, field, true)?,
                None => default,
            };
            Ok(Duration::from_millis(ms as u64))
        };
    let attempts = match &r.attempts {
        None => 3,
        Some(a) => u32::try_from(*a.get_ref()).map_err(|_| {
            ctx.err(&a.span(), format!("`attempts` must be 0 or more, found {}", a.get_ref()))
        })?,
    };
    let refuse = |set: bool, field: &str, span: std::ops::Range<usize>| -> Result<(), JobFileError> {
        if set {
            Err(ctx.err(
                &span,
                format!("`{field}` does not apply to the {} restart strategy", r.strategy.get_ref()),
            ))
        } else {
            Ok(())
        }
    };
    let span_of = |d: &Option<Spanned<RawDuration>>| d.as_ref().map_or(0..0, |d| d.span());
    Ok(match r.strategy.get_ref().as_str() {
        "none" => {
            let attempts_span = r.attempts.as_ref().map_or(0..0, |a| a.span());
            refuse(r.attempts.is_some(), "attempts", attempts_span)?;
            refuse(r.delay.is_some(), "delay", span_of(&r.delay))?;
            refuse(r.initial.is_some(), "initial", span_of(&r.initial))?;
            RestartStrategy::None
        }
        "fixed-delay" => {
            refuse(r.initial.is_some(), "initial", span_of(&r.initial))?;
            refuse(r.max.is_some(), "max", span_of(&r.max))?;
            let multiplier_span = r.multiplier.as_ref().map_or(0..0, |m| m.span());
            refuse(r.multiplier.is_some(), "multiplier", multiplier_span)?;
            RestartStrategy::FixedDelay { attempts, delay: ms(&r.delay, "delay", 1_000)? }
        }
        "exponential-backoff" => {
            refuse(r.delay.is_some(), "delay", span_of(&r.delay))?;
            let multiplier = match &r.multiplier {
                None => 2,
                Some(m) => u32::try_from(*m.get_ref()).ok().filter(|&m| m >= 1).ok_or_else(|| {
                    ctx.err(&m.span(), format!("`multiplier` must be a whole number from 1, found {}", m.get_ref()))
                })?,
            };
            let initial = ms(&r.initial, "initial", 100)?;
            let max = ms(&r.max, "max", 60_000)?;
            if max < initial {
                return Err(ctx.err(&span_of(&r.max), "`max` must not be shorter than `initial`"));
            }
            RestartStrategy::ExponentialBackoff { attempts, initial, max, multiplier }
        }
        other => {
            return Err(ctx.err(
                &r.strategy.span(),
                format!("unknown restart strategy `{other}`; expected \"none\", \"fixed-delay\" or \"exponential-backoff\""),
            ))
        }
    })
}

fn positive_u16(ctx: &Ctx<'_>, value: &Spanned<i64>, field: &str) -> Result<u16, JobFileError> {
    u16::try_from(*value.get_ref()).ok().filter(|&v| v > 0).ok_or_else(|| {
        ctx.err(
            &value.span(),
            format!("`{field}` must be a whole number from 1 to 65535, found {}", value.get_ref()),
        )
    })
}

fn positive_u64(
    ctx: &Ctx<'_>,
    value: &Option<Spanned<i64>>,
    field: &str,
    default: u64,
) -> Result<u64, JobFileError> {
    match value {
        None => Ok(default),
        Some(v) if *v.get_ref() > 0 => Ok(*v.get_ref() as u64),
        Some(v) => {
            Err(ctx.err(&v.span(), format!("`{field}` must be greater than 0, found {}", v.get_ref())))
        }
    }
}

fn collect_entries<'a>(ctx: &Ctx<'_>, raw: &'a RawFile) -> Result<Vec<Entry<'a>>, JobFileError> {
    let mut entries: Vec<Entry<'a>> = Vec::new();
    let sections =
        [(Section::Source, &raw.source), (Section::Operator, &raw.operator), (Section::Sink, &raw.sink)];
    for (section, list) in sections {
        for (n, spanned) in list.iter().enumerate() {
            let span = spanned.span();
            let e = spanned.get_ref();
            let kind_value = e.kind.as_ref().ok_or_else(|| {
                ctx.err(
                    &span,
                    format!(
                        "this {} has no `type`; expected one of: {}",
                        section.name(),
                        section.types().join(", ")
                    ),
                )
            })?;
            let kind = kind_value.get_ref().clone();
            if !section.types().contains(&kind.as_str()) {
                return Err(ctx.err(
                    &kind_value.span(),
                    format!(
                        "unknown {} type `{kind}`; expected one of: {}",
                        section.name(),
                        section.types().join(", ")
                    ),
                ));
            }
            let (name, name_span) = match (&e.name, section) {
                (Some(n), _) => (n.get_ref().clone(), n.span()),
                (None, Section::Sink) => (format!("sink{}", n + 1), kind_value.span()),
                (None, _) => {
                    return Err(ctx.err(
                        &span,
                        format!(
                            "this {} `{kind}` has no `name`; other entries refer to it by name",
                            section.name()
                        ),
                    ))
                }
            };
            if name.is_empty() || name.contains('.') {
                return Err(ctx.err(
                    &name_span,
                    format!("the name `{name}` is not allowed: names are non-empty and have no `.`"),
                ));
            }
            if let Some(prev) = entries.iter().find(|x| x.name == name) {
                let (line, _) = super::line_column(ctx.text, prev.name_span.start);
                return Err(ctx.err(&name_span, format!("the name `{name}` is already used on line {line}")));
            }
            let allowed = allowed_fields(section, &kind);
            // Every entry may say where it runs, except a key_by: it runs with its input.
            let placement_ok = |f: &str| f == "placement" && kind != "key_by";
            if let Some((field, field_span)) =
                e.set_fields().into_iter().find(|(f, _)| !allowed.contains(f) && !placement_ok(f))
            {
                return Err(
                    ctx.err(&field_span, format!("`{field}` does not apply to a {kind} {}", section.name()))
                );
            }
            let inputs = match (&e.input, section) {
                (Some(input), Section::Source) => {
                    return Err(ctx.err(&input.span(), "a source takes no `input`"))
                }
                (None, Section::Source) => Vec::new(),
                (None, _) => {
                    return Err(ctx.err(&name_span, format!("{} `{name}` has no `input`", section.name())))
                }
                (Some(input), _) => {
                    let names = input.get_ref().to_vec();
                    if names.is_empty() {
                        return Err(ctx.err(&input.span(), "`input` names no stream"));
                    }
                    names
                        .into_iter()
                        .map(|n| match n.strip_suffix(".late") {
                            Some(base) => (base.to_owned(), OutputTag::Late, input.span()),
                            None => (n, OutputTag::Main, input.span()),
                        })
                        .collect()
                }
            };
            entries.push(Entry { section, raw: e, name, name_span, kind, inputs });
        }
    }
    if entries.is_empty() {
        return Err(ctx.err(&(0..0), "the job file declares no [[source]], [[operator]] or [[sink]]"));
    }
    Ok(entries)
}

/// Orders entries so that each follows its inputs, keeping file order where free.
fn order_entries(ctx: &Ctx<'_>, entries: &[Entry<'_>]) -> Result<Vec<usize>, JobFileError> {
    let index_of = |name: &str| entries.iter().position(|e| e.name == name);
    for e in entries {
        for (input, _, span) in &e.inputs {
            let Some(i) = index_of(input) else {
                let known: Vec<&str> =
                    entries.iter().filter(|x| x.section != Section::Sink).map(|x| x.name.as_str()).collect();
                return Err(ctx.err(
                    span,
                    format!("unknown input `{input}`; the streams defined are: {}", known.join(", ")),
                ));
            };
            if entries[i].section == Section::Sink {
                return Err(ctx.err(span, format!("`{input}` is a sink and has no output to read")));
            }
        }
    }
    let mut placed = vec![false; entries.len()];
    let mut order = Vec::with_capacity(entries.len());
    while order.len() < entries.len() {
        let next = (0..entries.len()).find(|&i| {
            !placed[i]
                && entries[i].inputs.iter().all(|(n, _, _)| placed[index_of(n).expect("resolved above")])
        });
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                // Every unplaced entry waits on another: follow inputs until a name repeats.
                let mut path =
                    vec![(0..entries.len()).find(|&i| !placed[i]).expect("some entry is unplaced")];
                loop {
                    let last = *path.last().expect("non-empty");
                    let next = entries[last]
                        .inputs
                        .iter()
                        .map(|(n, _, _)| index_of(n).expect("resolved"))
                        .find(|&i| !placed[i])
                        .expect("an unplaced entry waits on an unplaced input");
                    if let Some(at) = path.iter().position(|&i| i == next) {
                        let cycle: Vec<&str> =
                            path[at..].iter().chain([&next]).map(|&i| entries[i].name.as_str()).collect();
                        let first = &entries[path[at]];
                        return Err(ctx.err(
                            &first.name_span,
                            format!("the job graph has a cycle: {}", cycle.join(" → ")),
                        ));
                    }
                    path.push(next);
                }
            }
        }
    }
    Ok(order)
}

fn build_entry(
    ctx: &Ctx<'_>,
    builder: &mut JobGraphBuilder,
    entry: &Entry<'_>,
) -> Result<VertexId, JobFileError> {
    let e = entry.raw;
    let inputs: Vec<(VertexId, OutputTag)> = entry
        .inputs
        .iter()
        .map(|(n, tag, _)| (builder.find(n).expect("ordered after its inputs").id, *tag))
        .collect();
    let input_schema =
        inputs.first().map(|&(id, tag)| builder.output_schema(id, tag).clone()).unwrap_or_default();
    let kind = match (entry.section, entry.kind.as_str()) {
        (Section::Source, "generator") => {
            let config = GeneratorConfig {
                count: match &e.count {
                    None => None,
                    Some(c) if *c.get_ref() >= 0 => Some(*c.get_ref() as u64),
                    Some(c) => {
                        return Err(
                            ctx.err(&c.span(), format!("`count` must be 0 or more, found {}", c.get_ref()))
                        )
                    }
                },
                rate_per_second: e
                    .rate
                    .as_ref()
                    .map(|_| positive_u64(ctx, &e.rate, "rate", 0))
                    .transpose()?,
                keys: positive_u64(ctx, &e.keys, "keys", 10_000)?,
                values: positive_u64(ctx, &e.values, "values", 1_000)?,
                records_per_ms: positive_u64(ctx, &e.records_per_ms, "records_per_ms", 100)?,
                start_ms: e.start_ms.as_ref().map_or(0, |s| *s.get_ref()),
            };
            let schema = GeneratorConfig::schema();
            let event_time = event_time(ctx, e, &schema)?;
            VertexKind::Source { connector: SourceConnector::Generator(config), event_time }
        }
        (Section::Source, "file") => {
            let schema = file_schema(ctx, entry)?;
            let format = file_format(ctx, entry, None)?;
            let bad_lines = match e.bad_lines.as_ref().map(|b| (b.get_ref().as_str(), b.span())) {
                None | Some(("fail", _)) => BadLinePolicy::Fail,
                Some(("skip", _)) => BadLinePolicy::Skip,
                Some((other, span)) => {
                    return Err(ctx
                        .err(&span, format!("`bad_lines` must be \"fail\" or \"skip\", found \"{other}\"")))
                }
            };
            let config = FileSourceConfig {
                path: required_string(ctx, entry, &e.path, "path")?,
                format,
                header: e.header.as_ref().map_or(format == FileFormat::Csv, |h| *h.get_ref()),
                bad_lines,
                schema: schema.clone(),
            };
            let event_time = event_time(ctx, e, &schema)?;
            VertexKind::Source { connector: SourceConnector::File(config), event_time }
        }
        (Section::Operator, "filter") => {
            let text = e.predicate.as_ref().ok_or_else(|| {
                ctx.err(&entry.name_span, format!("filter `{}` has no `predicate`", entry.name))
            })?;
            let predicate = compile(ctx, text, &input_schema)?;
            if predicate.data_type() != DataType::Bool {
                return Err(ctx.err(
                    &text.span(),
                    format!(
                        "a filter's `predicate` must be a bool expression, found {}",
                        predicate.data_type()
                    ),
                ));
            }
            VertexKind::Filter { predicate }
        }
        (Section::Operator, "map") => VertexKind::Map { fields: map_fields(ctx, entry, &input_schema)? },
        (Section::Operator, "key_by") => {
            let key = e
                .key
                .as_ref()
                .ok_or_else(|| ctx.err(&entry.name_span, format!("key_by `{}` has no `key`", entry.name)))?;
            let names = key.get_ref().to_vec();
            if names.is_empty() {
                return Err(ctx.err(&key.span(), "`key` names no field"));
            }
            let mut fields = Vec::new();
            for n in names {
                let index = field_index(ctx, &input_schema, &n, &key.span(), "key")?;
                if fields.contains(&index) {
                    return Err(ctx.err(&key.span(), format!("the key names `{n}` twice")));
                }
                fields.push(index);
            }
            let types = fields.iter().map(|&f| input_schema.fields[f].data_type).collect();
            VertexKind::KeyBy { key: KeySelector::new(fields, types) }
        }
        (Section::Operator, "window" | "aggregate") => {
            keyed_kind(ctx, builder, entry, &inputs, &input_schema)?
        }
        (Section::Operator, "union") => {
            if entry.inputs.len() < 2 {
                let span = e.input.as_ref().map_or(entry.name_span.clone(), |i| i.span());
                return Err(ctx.err(&span, "a union needs at least two inputs: `input = [\"a\", \"b\"]`"));
            }
            VertexKind::Union
        }
        (Section::Sink, "count") => VertexKind::Sink { connector: SinkConnector::Count },
        (Section::Sink, "stdout") => VertexKind::Sink {
            connector: SinkConnector::Stdout { format: file_format(ctx, entry, Some(FileFormat::Csv))? },
        },
        (Section::Sink, "file") => {
            let format = file_format(ctx, entry, None)?;
            VertexKind::Sink {
                connector: SinkConnector::File(FileSinkConfig {
                    path: required_string(ctx, entry, &e.path, "path")?,
                    format,
                    header: e.header.as_ref().map_or(format == FileFormat::Csv, |h| *h.get_ref()),
                }),
            }
        }
        (section, kind) => unreachable!("checked when collected: {} type {kind}", section.name()),
    };
    let parallelism = e.parallelism.as_ref().map(|p| positive_u16(ctx, p, "parallelism")).transpose()?;
    let partitioning = match e.partitioning.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
        None => None,
        Some(("forward", _)) => Some(Partitioning::Forward),
        Some(("rebalance", _)) => Some(Partitioning::Rebalance),
        Some(("broadcast", _)) => Some(Partitioning::Broadcast),
        Some((other, span)) => {
            return Err(ctx.err(&span, format!("`partitioning` must be \"forward\", \"rebalance\" or \"broadcast\" (hash follows a key_by by itself), found \"{other}\"")))
        }
    };
    if partitioning.is_some() && entry.section == Section::Source {
        return Err(ctx.err(&entry.name_span, "a source has no input to partition"));
    }
    let id = builder
        .add(&entry.name, kind, parallelism, &inputs, partitioning)
        .map_err(|err| ctx.err(&entry.name_span, err.message))?;
    if let Some(table) = &e.placement {
        let labels: BTreeMap<String, String> =
            table.get_ref().iter().map(|(name, value)| (name.clone(), value.get_ref().clone())).collect();
        check_labels(&labels).map_err(|err| ctx.err(&table.span(), format!("`placement`: {err}")))?;
        builder.set_placement(id, labels);
    }
    Ok(id)
}

fn required_string(
    ctx: &Ctx<'_>,
    entry: &Entry<'_>,
    value: &Option<Spanned<String>>,
    field: &str,
) -> Result<String, JobFileError> {
    match value {
        Some(v) if !v.get_ref().is_empty() => Ok(v.get_ref().clone()),
        Some(v) => Err(ctx.err(&v.span(), format!("`{field}` is empty"))),
        None => Err(ctx.err(&entry.name_span, format!("{} `{}` has no `{field}`", entry.kind, entry.name))),
    }
}

fn file_format(
    ctx: &Ctx<'_>,
    entry: &Entry<'_>,
    default: Option<FileFormat>,
) -> Result<FileFormat, JobFileError> {
    match (&entry.raw.format, default) {
        (None, Some(d)) => Ok(d),
        (None, None) => Err(ctx.err(
            &entry.name_span,
            format!("{} `{}` has no `format` (\"csv\" or \"jsonl\")", entry.kind, entry.name),
        )),
        (Some(f), _) => match f.get_ref().as_str() {
            "csv" => Ok(FileFormat::Csv),
            "jsonl" | "json" => Ok(FileFormat::JsonLines),
            other => {
                Err(ctx.err(&f.span(), format!("`format` must be \"csv\" or \"jsonl\", found \"{other}\"")))
            }
        },
    }
}

fn file_schema(ctx: &Ctx<'_>, entry: &Entry<'_>) -> Result<Schema, JobFileError> {
    let schema = entry.raw.schema.as_ref().ok_or_else(|| {
        ctx.err(
            &entry.name_span,
            format!(
                "file source `{}` has no `schema`: add a [source.schema] table of field = \"type\"",
                entry.name
            ),
        )
    })?;
    if schema.get_ref().is_empty() {
        return Err(ctx.err(&schema.span(), "the schema has no fields"));
    }
    let mut fields = Vec::new();
    for (name, ty) in schema.get_ref().iter() {
        let data_type = DataType::from_name(ty.get_ref()).ok_or_else(|| {
            ctx.err(
                &ty.span(),
                format!(
                    "unknown type `{}` for field `{name}`; expected int, float, bool, string or timestamp",
                    ty.get_ref()
                ),
            )
        })?;
        fields.push(Field::new(name.clone(), data_type));
    }
    Ok(Schema::new(fields))
}

fn event_time(ctx: &Ctx<'_>, e: &RawEntry, schema: &Schema) -> Result<Option<EventTimeSpec>, JobFileError> {
    let Some(field) = &e.event_time else {
        if let Some(o) = &e.out_of_orderness {
            return Err(
                ctx.err(&o.span(), "`out_of_orderness` needs `event_time`: name the timestamp field first")
            );
        }
        return Ok(None);
    };
    let index = field_index(ctx, schema, field.get_ref(), &field.span(), "event_time")?;
    let data_type = schema.fields[index].data_type;
    if !data_type.is_integer_like() {
        return Err(ctx.err(
            &field.span(),
            format!("`event_time` must name a timestamp or int field; `{}` is {data_type}", field.get_ref()),
        ));
    }
    let out_of_orderness_ms = match &e.out_of_orderness {
        None => 0,
        Some(d) => duration_ms(ctx, d, "out_of_orderness", true)?,
    };
    Ok(Some(EventTimeSpec { field: EventTimeField { index, offset_ms: 0 }, out_of_orderness_ms }))
}

fn duration_ms(
    ctx: &Ctx<'_>,
    value: &Spanned<RawDuration>,
    field: &str,
    zero_ok: bool,
) -> Result<i64, JobFileError> {
    let ms = match value.get_ref() {
        RawDuration::Millis(ms) => Some(*ms),
        RawDuration::Text(text) => parse_duration(text),
    };
    match ms {
        Some(ms) if ms > 0 || (zero_ok && ms == 0) => Ok(ms),
        _ => Err(ctx.err(
            &value.span(),
            format!("`{field}` must be a {} duration: milliseconds as a number, or a string such as \"500ms\", \"2s\", \"1min\", \"1h\"", if zero_ok { "non-negative" } else { "positive" }),
        )),
    }
}

/// Parses `"<number><unit>"` with unit ms, s, min (or m) or h.
pub(super) fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn field_index(
    ctx: &Ctx<'_>,
    schema: &Schema,
    name: &str,
    span: &Range<usize>,
    what: &str,
) -> Result<usize, JobFileError> {
    schema.index_of(name).ok_or_else(|| {
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        ctx.err(
            span,
            format!("`{what}` names unknown field `{name}`; the input has fields {}", names.join(", ")),
        )
    })
}

fn compile(ctx: &Ctx<'_>, text: &Spanned<String>, schema: &Schema) -> Result<expr::Expr, JobFileError> {
    let ast = parse_ast(ctx, text)?;
    expr::compile(&ast, schema)
        .map_err(|e| error_at(ctx.text, ctx.string_start(&text.span()) + e.span.start, e.message))
}

fn parse_ast(ctx: &Ctx<'_>, text: &Spanned<String>) -> Result<Ast, JobFileError> {
    if text.get_ref().len() > EXPRESSION_BYTES_MAX {
        return Err(
            ctx.err(&text.span(), format!("the expression is longer than {EXPRESSION_BYTES_MAX} bytes"))
        );
    }
    expr::parse(text.get_ref())
        .map_err(|e| error_at(ctx.text, ctx.string_start(&text.span()) + e.span.start, e.message))
}

fn map_fields(
    ctx: &Ctx<'_>,
    entry: &Entry<'_>,
    input: &Schema,
) -> Result<Vec<(String, MapField)>, JobFileError> {
    let e = entry.raw;
    let mut fields: Vec<(String, MapField)> = match (&e.keep, &e.drop) {
        (Some(_), Some(d)) => return Err(ctx.err(&d.span(), "a map takes `keep` or `drop`, not both")),
        (Some(keep), None) => {
            let mut out = Vec::new();
            for name in keep.get_ref() {
                let i = field_index(ctx, input, name.get_ref(), &name.span(), "keep")?;
                if out.iter().any(|(n, _)| n == name.get_ref()) {
                    return Err(ctx.err(&name.span(), format!("`keep` names `{}` twice", name.get_ref())));
                }
                out.push((name.get_ref().clone(), MapField::Input(i)));
            }
            out
        }
        (None, drop) => {
            let mut dropped = Vec::new();
            for name in drop.iter().flat_map(|d| d.get_ref()) {
                dropped.push(field_index(ctx, input, name.get_ref(), &name.span(), "drop")?);
            }
            input
                .fields
                .iter()
                .enumerate()
                .filter(|(i, _)| !dropped.contains(i))
                .map(|(i, f)| (f.name.clone(), MapField::Input(i)))
                .collect()
        }
    };
    let compute: Option<&Table> = e.compute.as_ref().map(|c| c.get_ref());
    for (name, text) in compute.into_iter().flat_map(Table::iter) {
        let expr = compile(ctx, text, input)?;
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = MapField::Computed(expr),
            None => fields.push((name.clone(), MapField::Computed(expr))),
        }
    }
    if fields.is_empty() {
        return Err(ctx.err(&entry.name_span, format!("map `{}` outputs no field", entry.name)));
    }
    Ok(fields)
}

fn keyed_kind(
    ctx: &Ctx<'_>,
    builder: &JobGraphBuilder,
    entry: &Entry<'_>,
    inputs: &[(VertexId, OutputTag)],
    input: &Schema,
) -> Result<VertexKind, JobFileError> {
    let e = entry.raw;
    let input_span = e.input.as_ref().map_or(entry.name_span.clone(), |i| i.span());
    if inputs.len() != 1 {
        return Err(ctx.err(&input_span, format!("a {} takes one input", entry.kind)));
    }
    let upstream = builder.vertex(inputs[0].0);
    let VertexKind::KeyBy { key } = &upstream.kind else {
        return Err(ctx.err(
            &input_span,
            format!(
                "a {} needs a keyed input: its input `{}` is a {}; put a key_by between them",
                entry.kind,
                upstream.name,
                upstream.kind.name()
            ),
        ));
    };
    let aggregates = aggregates(ctx, entry, input)?;
    let key_types: Vec<DataType> = key.types.clone();
    if entry.kind == "aggregate" {
        let event_time_input = input.event_time.map(|et| et.index).filter(|i| !key.fields.contains(i));
        let mut output_types = key_types;
        if event_time_input.is_some() {
            output_types.push(DataType::Timestamp);
        }
        output_types.extend(aggregates.iter().map(|a| a.output_type));
        let config = AggregateConfig {
            name: entry.name.clone(),
            key: key.clone(),
            aggregates,
            max_parallelism: builder.max_parallelism(),
            event_time_input,
            output_types,
        };
        return Ok(VertexKind::Aggregate(config));
    }
    let Some(event_time) = input.event_time else {
        return Err(ctx.err(
            &entry.name_span,
            format!("window `{}` needs event time: set `event_time` on the source", entry.name),
        ));
    };
    let window = e.window.as_ref().ok_or_else(|| {
        ctx.err(
            &entry.name_span,
            format!(
                "window `{}` has no `window` kind (\"tumbling\", \"sliding\" or \"session\")",
                entry.name
            ),
        )
    })?;
    let need = |value: &Option<Spanned<RawDuration>>, field: &str| -> Result<i64, JobFileError> {
        match value {
            Some(v) => duration_ms(ctx, v, field, false),
            None => Err(ctx.err(&window.span(), format!("a {} window needs `{field}`", window.get_ref()))),
        }
    };
    let refuse = |value: &Option<Spanned<RawDuration>>, field: &str| -> Result<(), JobFileError> {
        match value {
            Some(v) => {
                Err(ctx.err(&v.span(), format!("`{field}` does not apply to a {} window", window.get_ref())))
            }
            None => Ok(()),
        }
    };
    let kind = match window.get_ref().as_str() {
        "tumbling" => {
            refuse(&e.slide, "slide")?;
            refuse(&e.gap, "gap")?;
            WindowKind::Tumbling { size_ms: need(&e.size, "size")? }
        }
        "sliding" => {
            refuse(&e.gap, "gap")?;
            let (size_ms, slide_ms) = (need(&e.size, "size")?, need(&e.slide, "slide")?);
            if size_ms / slide_ms > WINDOWS_PER_RECORD_MAX {
                let span = e.slide.as_ref().map_or(window.span(), |s| s.span());
                return Err(ctx.err(
                    &span,
                    format!(
                        "a record would belong to {} sliding windows; `size / slide` must be at most {WINDOWS_PER_RECORD_MAX}",
                        size_ms / slide_ms
                    ),
                ));
            }
            WindowKind::Sliding { size_ms, slide_ms }
        }
        "session" => {
            refuse(&e.size, "size")?;
            refuse(&e.slide, "slide")?;
            WindowKind::Session { gap_ms: need(&e.gap, "gap")? }
        }
        other => {
            return Err(ctx.err(
                &window.span(),
                format!("unknown window kind `{other}`; expected \"tumbling\", \"sliding\" or \"session\""),
            ))
        }
    };
    let late = match e.late.as_ref().map(|l| (l.get_ref().as_str(), l.span())) {
        None | Some(("drop", _)) => LatePolicy::Drop,
        Some(("route", _)) => LatePolicy::Route,
        Some((other, span)) => {
            return Err(ctx.err(&span, format!("`late` must be \"drop\" or \"route\", found \"{other}\"")))
        }
    };
    let mut output_types = key_types;
    output_types.extend([DataType::Timestamp, DataType::Timestamp]);
    output_types.extend(aggregates.iter().map(|a| a.output_type));
    Ok(VertexKind::Window(WindowConfig {
        name: entry.name.clone(),
        kind,
        key: key.clone(),
        event_time,
        aggregates,
        late,
        max_parallelism: builder.max_parallelism(),
        output_types,
    }))
}

fn aggregates(ctx: &Ctx<'_>, entry: &Entry<'_>, input: &Schema) -> Result<Vec<AggregateSpec>, JobFileError> {
    let table = entry.raw.aggregates.as_ref().ok_or_else(|| {
        ctx.err(
            &entry.name_span,
            format!(
                "{} `{}` has no `aggregates`: add a table of name = \"count()\", \"sum(field)\", …",
                entry.kind, entry.name
            ),
        )
    })?;
    if table.get_ref().is_empty() || table.get_ref().len() > AGGREGATES_MAX {
        return Err(
            ctx.err(&table.span(), format!("`aggregates` must list from 1 to {AGGREGATES_MAX} aggregates"))
        );
    }
    let mut specs = Vec::new();
    for (name, text) in table.get_ref().iter() {
        let ast = parse_ast(ctx, text)?;
        let start = ctx.string_start(&text.span());
        let expected = "an aggregate call: count(), sum(x), min(x), max(x) or avg(x)";
        let Ast::Call { name: function, args, span } = &ast else {
            return Err(ctx.err(&text.span(), format!("`{name}` must be {expected}")));
        };
        let Some(kind) = AggregateKind::from_name(function) else {
            return Err(error_at(
                ctx.text,
                start + span.start,
                format!("unknown aggregate `{function}`; expected {expected}"),
            ));
        };
        let arg = match (kind, args.as_slice()) {
            (AggregateKind::Count, []) => None,
            (AggregateKind::Count, _) => {
                return Err(error_at(ctx.text, start + span.start, "count() takes no argument".to_owned()))
            }
            (_, [arg]) => Some(
                expr::compile(arg, input).map_err(|e| error_at(ctx.text, start + e.span.start, e.message))?,
            ),
            (_, _) => {
                return Err(error_at(
                    ctx.text,
                    start + span.start,
                    format!("{function}() takes exactly one argument"),
                ))
            }
        };
        let arg_type = arg.as_ref().map(|a| a.data_type());
        let output_type = kind.result_type(arg_type).ok_or_else(|| {
            error_at(
                ctx.text,
                start + span.start,
                format!(
                    "{function}() does not apply to {}",
                    arg_type.map_or("nothing".to_owned(), |t| t.to_string())
                ),
            )
        })?;
        specs.push(AggregateSpec { output_name: name.clone(), kind, arg, output_type });
    }
    Ok(specs)
}
