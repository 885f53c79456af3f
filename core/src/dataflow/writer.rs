//! Output writers: send one edge's records to the downstream channels by its partitioning.

use std::collections::VecDeque;

use crate::batch::Batch;
use crate::dataflow::element::Element;
use crate::dataflow::plan::{ChannelAddr, WriterPlan};
use crate::graph::Partitioning;
use crate::key::{key_group_of, subtask_of_key_group};

/// An element addressed to a downstream channel, waiting for the driver to deliver it.
#[derive(Debug, PartialEq)]
pub struct Outgoing {
    pub to: ChannelAddr,
    pub element: Element,
}

#[derive(Debug)]
pub struct OutputWriter {
    plan: WriterPlan,
    max_parallelism: u16,
    next_target: usize,
    hashes: Vec<u64>,
    rows_by_target: Vec<Vec<u32>>,
}

impl OutputWriter {
    pub fn new(plan: WriterPlan, max_parallelism: u16, subtask_index: u16) -> OutputWriter {
        let targets = plan.targets.len();
        assert!(targets > 0);
        OutputWriter {
            plan,
            max_parallelism,
            // Start the round robin at the subtask's own index so that parallel producers spread out.
            next_target: usize::from(subtask_index) % targets,
            hashes: Vec::new(),
            rows_by_target: vec![Vec::new(); targets],
        }
    }

    pub fn plan(&self) -> &WriterPlan {
        &self.plan
    }

    pub fn write_batch(&mut self, batch: Batch, outbox: &mut VecDeque<Outgoing>) {
        let targets = &self.plan.targets;
        match &self.plan.partitioning {
            Partitioning::Forward => {
                outbox.push_back(Outgoing { to: targets[0], element: Element::Batch(batch) })
            }
            Partitioning::Rebalance => {
                let to = targets[self.next_target];
                self.next_target = (self.next_target + 1) % targets.len();
                outbox.push_back(Outgoing { to, element: Element::Batch(batch) });
            }
            Partitioning::Broadcast => {
                for &to in &targets[1..] {
                    outbox.push_back(Outgoing { to, element: Element::Batch(batch.clone()) });
                }
                outbox.push_back(Outgoing { to: targets[0], element: Element::Batch(batch) });
            }
            Partitioning::Hash(key) => {
                if targets.len() == 1 {
                    outbox.push_back(Outgoing { to: targets[0], element: Element::Batch(batch) });
                    return;
                }
                key.hashes(&batch, &mut self.hashes);
                let parallelism = targets.len() as u16;
                for rows in &mut self.rows_by_target {
                    rows.clear();
                }
                for (row, &hash) in self.hashes.iter().enumerate() {
                    let target = subtask_of_key_group(
                        key_group_of(hash, self.max_parallelism),
                        self.max_parallelism,
                        parallelism,
                    );
                    self.rows_by_target[usize::from(target)].push(row as u32);
                }
                let types: Vec<_> = batch.columns.iter().map(|c| c.data_type()).collect();
                for (t, rows) in self.rows_by_target.iter().enumerate() {
                    if rows.is_empty() {
                        continue;
                    }
                    let mut part = Batch::empty(&types, rows.len());
                    part.extend_rows(&batch, rows);
                    outbox.push_back(Outgoing { to: targets[t], element: Element::Batch(part) });
                }
            }
        }
    }

    /// Sends a watermark or the end marker to every downstream channel.
    pub fn write_marker(&mut self, element: &Element, outbox: &mut VecDeque<Outgoing>) {
        debug_assert!(!matches!(element, Element::Batch(_)));
        for &to in &self.plan.targets {
            outbox.push_back(Outgoing { to, element: element.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Column;
    use crate::dataflow::plan::SubtaskId;
    use crate::graph::OutputTag;
    use crate::key::{Key, KeySelector};
    use crate::types::{DataType, Scalar};

    /// Channel 3 of subtasks 10, 11, … (downstream subtask order).
    fn targets(n: u32) -> Vec<ChannelAddr> {
        (0..n).map(|i| ChannelAddr { subtask: SubtaskId(10 + i), channel: 3 }).collect()
    }

    fn writer(partitioning: Partitioning, n: u32, subtask_index: u16) -> OutputWriter {
        let plan =
            WriterPlan { chain_position: 0, output: OutputTag::Main, partitioning, targets: targets(n) };
        OutputWriter::new(plan, 128, subtask_index)
    }

    /// Rows of `(key, name)`, plus a row number to check order.
    fn batch(rows: &[(i64, &str)]) -> Batch {
        Batch::new(vec![
            Column::Int(rows.iter().map(|r| r.0).collect()),
            Column::Str(rows.iter().map(|r| r.1).collect()),
            Column::Int((0..rows.len() as i64).collect()),
        ])
    }

    fn ints(n: i64) -> Batch {
        Batch::new(vec![Column::Int((0..n).collect())])
    }

    fn write(w: &mut OutputWriter, batch: Batch) -> Vec<Outgoing> {
        let mut outbox = VecDeque::new();
        w.write_batch(batch, &mut outbox);
        outbox.into()
    }

    fn to_index(o: &Outgoing) -> u32 {
        assert_eq!(o.to.channel, 3);
        o.to.subtask.0 - 10
    }

    #[test]
    fn forward_sends_every_batch_unchanged_to_its_single_target() {
        let mut w = writer(Partitioning::Forward, 1, 4);
        for n in [1, 5] {
            let sent = write(&mut w, ints(n));
            assert_eq!(sent, vec![Outgoing { to: targets(1)[0], element: Element::Batch(ints(n)) }]);
        }
    }

    #[test]
    fn rebalance_deals_whole_batches_round_robin_from_the_subtask_index() {
        let mut w = writer(Partitioning::Rebalance, 3, 4);
        let order: Vec<u32> = (0..7)
            .map(|n| {
                let sent = write(&mut w, ints(n + 1));
                assert_eq!(sent.len(), 1);
                assert_eq!(sent[0].element, Element::Batch(ints(n + 1)), "batches are not split");
                to_index(&sent[0])
            })
            .collect();
        // Subtask 4 of its vertex starts at target 4 % 3 = 1.
        assert_eq!(order, vec![1, 2, 0, 1, 2, 0, 1]);
    }

    #[test]
    fn hash_sends_each_row_to_the_subtask_owning_its_key_group() {
        for p in [2, 3, 7] {
            let key = KeySelector::new(vec![0], vec![DataType::Int]);
            let mut w = writer(Partitioning::Hash(key), p, 0);
            let rows: Vec<(i64, &str)> = (0..500).map(|i| ((i * 37) % 101 - 50, "x")).collect();
            let sent = write(&mut w, batch(&rows));
            let mut seen = 0;
            for o in &sent {
                let Element::Batch(b) = &o.element else { panic!("only batches") };
                assert!(!b.is_empty(), "no empty batches");
                let positions = b.columns[2].as_i64().unwrap();
                assert!(positions.windows(2).all(|w| w[0] < w[1]), "rows keep their order");
                for (&k, &pos) in b.columns[0].as_i64().unwrap().iter().zip(positions) {
                    let group = key_group_of(Key::Int(k).stable_hash(), 128);
                    assert_eq!(to_index(o), u32::from(subtask_of_key_group(group, 128, p as u16)));
                    assert_eq!(rows[pos as usize].0, k);
                    seen += 1;
                }
            }
            assert_eq!(seen, rows.len(), "every row goes somewhere, once");
            let order: Vec<u32> = sent.iter().map(to_index).collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "one batch per target, in target order");
        }
    }

    #[test]
    fn hash_never_splits_one_key_across_targets_whatever_the_batch() {
        let key = KeySelector::new(vec![1, 0], vec![DataType::Str, DataType::Int]);
        let mut w = writer(Partitioning::Hash(key), 4, 2);
        let names = ["a", "b", "", "long name", "ü"];
        let mut owner: std::collections::BTreeMap<(String, i64), u32> = Default::default();
        for round in 0..5 {
            let rows: Vec<(i64, &str)> =
                (0..60).map(|i| ((i * 7 + round) % 13, names[(i % 5) as usize])).collect();
            for o in write(&mut w, batch(&rows)) {
                let Element::Batch(b) = &o.element else { panic!("only batches") };
                for r in 0..b.len() {
                    let row = b.row(r);
                    let (Scalar::Int(k), Scalar::Str(name)) = (&row[0], &row[1]) else { panic!("{row:?}") };
                    let previous = owner.insert((name.clone(), *k), to_index(&o));
                    assert!(previous.is_none_or(|p| p == to_index(&o)), "key ({name}, {k}) moved");
                }
            }
        }
        assert!(owner.values().collect::<std::collections::BTreeSet<_>>().len() > 1, "keys spread out");
    }

    #[test]
    fn hash_to_a_single_target_passes_the_batch_whole() {
        let key = KeySelector::new(vec![0], vec![DataType::Int]);
        let mut w = writer(Partitioning::Hash(key), 1, 0);
        let b = batch(&[(1, "a"), (2, "b")]);
        assert_eq!(
            write(&mut w, b.clone()),
            vec![Outgoing { to: targets(1)[0], element: Element::Batch(b) }]
        );
    }

    #[test]
    fn broadcast_sends_a_copy_of_every_batch_to_every_target() {
        let mut w = writer(Partitioning::Broadcast, 3, 1);
        let b = batch(&[(1, "a"), (2, "b")]);
        let sent = write(&mut w, b.clone());
        let mut to: Vec<u32> = sent.iter().map(to_index).collect();
        to.sort_unstable();
        assert_eq!(to, vec![0, 1, 2]);
        assert!(sent.iter().all(|o| o.element == Element::Batch(b.clone())));
    }

    #[test]
    fn markers_go_to_every_target_in_order_whatever_the_partitioning() {
        let key = KeySelector::new(vec![0], vec![DataType::Int]);
        let kinds = [Partitioning::Rebalance, Partitioning::Broadcast, Partitioning::Hash(key)];
        for partitioning in kinds {
            let mut w = writer(partitioning, 3, 2);
            let mut outbox = VecDeque::new();
            w.write_marker(&Element::Watermark(17), &mut outbox);
            w.write_marker(&Element::EndOfInput, &mut outbox);
            let expected: Vec<Outgoing> = [Element::Watermark(17), Element::EndOfInput]
                .into_iter()
                .flat_map(|e| targets(3).into_iter().map(move |to| Outgoing { to, element: e.clone() }))
                .collect();
            assert_eq!(Vec::from(outbox), expected);
        }
        let mut w = writer(Partitioning::Forward, 1, 0);
        let mut outbox = VecDeque::new();
        w.write_marker(&Element::EndOfInput, &mut outbox);
        assert_eq!(Vec::from(outbox), vec![Outgoing { to: targets(1)[0], element: Element::EndOfInput }]);
    }
}
