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
