//! The ResourceManager against a deliberately simple reference model, over random sequences of
//! registrations, heartbeats, disconnections, slot requests, releases, cancellations and the
//! passing of time. After every step the outputs, the answers and the queries must equal the
//! model's, `assert_invariants` must hold, every granted slot must lie on a live TaskManager that
//! matches its request, and no request may wait while it could be granted. The same sequence run
//! twice must give the same trace.
//!
//! The model keeps plain vectors and recomputes everything by linear scans: it grants slot by
//! slot (fewest taken by this grant, then most free left, then lowest id) where the
//! ResourceManager grants in rounds, and it re-scans the waiting requests from the oldest after
//! every grant where the ResourceManager makes one pass.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const LABEL_UNIVERSE: [(&str, &str); 4] = [("site", "a"), ("site", "b"), ("arch", "arm64"), ("disk", "ssd")];

/// The labels a bit mask picks from [`LABEL_UNIVERSE`] (a later `site` overrides an earlier one).
fn labels_of(mask: u8) -> BTreeMap<String, String> {
    (LABEL_UNIVERSE.iter().enumerate())
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, &(n, v))| (n.to_owned(), v.to_owned()))
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Register { tm: u64, address: u8, slots: u16, labels: u8, version_ok: bool },
    Heartbeat { tm: u64 },
    Disconnect { tm: u64 },
    Request { job: u64, attempt: u32, count: u16, placement: u8 },
    Release { job: u64, attempt: u32 },
    Cancel { job: u64 },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let slots = prop_oneof![8 => 0u16..=4, 1 => Just(SLOTS_PER_TASK_MANAGER_MAX + 1)];
    prop_oneof![
        3 => (0u64..5, 0u8..2, slots, 0u8..16, prop::bool::weighted(0.9)).prop_map(
            |(tm, address, slots, labels, version_ok)| Op::Register { tm, address, slots, labels, version_ok }
        ),
        4 => (0u64..5).prop_map(|tm| Op::Heartbeat { tm }),
        1 => (0u64..5).prop_map(|tm| Op::Disconnect { tm }),
        4 => (0u64..3, 0u32..2, 0u16..=5, prop_oneof![3 => Just(0u8), 2 => 0u8..16]).prop_map(
            |(job, attempt, count, placement)| Op::Request { job, attempt, count, placement }
        ),
        2 => (0u64..3, 0u32..2).prop_map(|(job, attempt)| Op::Release { job, attempt }),
        1 => (0u64..3).prop_map(|job| Op::Cancel { job }),
        3 => (0u64..3000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn registration_of(
    tm: u64,
    address: u8,
    slots: u16,
    labels: u8,
    version_ok: bool,
) -> TaskManagerRegistration {
    TaskManagerRegistration {
        id: TaskManagerId(tm),
        address: format!("10.0.{address}.1:6121"),
        slots,
        labels: labels_of(labels),
        protocol_version: if version_ok { PROTOCOL_VERSION_DEFAULT } else { PROTOCOL_VERSION_DEFAULT + 1 },
    }
}

/// What a step answered synchronously, compared alongside the outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    None,
    Liveness(Result<(), UnknownTaskManager>),
    Request(Result<SlotRequestId, SlotRequestError>),
    Released(Released),
    Dropped(usize),
}

struct ModelTm {
    address: String,
    labels: BTreeMap<String, String>,
    slots: Vec<Option<SlotOwner>>,
    registered_at: Instant,
    last_heartbeat: Instant,
}

impl ModelTm {
    fn free(&self) -> usize {
        self.slots.iter().filter(|s| s.is_none()).count()
    }
    fn matches(&self, placement: &BTreeMap<String, String>) -> bool {
        placement.iter().all(|(n, v)| self.labels.get(n) == Some(v))
    }
}

struct Model {
    config: ResourceManagerConfig,
    now: Instant,
    tms: BTreeMap<TaskManagerId, ModelTm>,
    pending: Vec<(SlotRequestId, SlotRequest, Instant)>,
    next_request: u64,
    outputs: Vec<Output>,
}

impl Model {
    fn new(config: ResourceManagerConfig) -> Model {
        Model {
            config,
            now: Instant::ZERO,
            tms: BTreeMap::new(),
            pending: Vec::new(),
            next_request: 0,
            outputs: vec![],
        }
    }

    fn deadline(&self, tm: &ModelTm) -> Instant {
        tm.last_heartbeat + self.config.heartbeat_timeout
    }

    fn advance(&mut self, now: Instant) {
        self.now = now;
        loop {
            let due = (self.tms.iter())
                .map(|(&id, tm)| (self.deadline(tm), id))
                .filter(|&(deadline, _)| deadline <= now)
                .min();
            let Some((_, id)) = due else { break };
            self.kill(id, true);
        }
    }

    fn kill(&mut self, id: TaskManagerId, announce: bool) {
        let tm = self.tms.remove(&id).unwrap();
        let mut lost: BTreeMap<SlotOwner, Vec<SlotId>> = BTreeMap::new();
        for (i, owner) in tm.slots.iter().enumerate() {
            if let Some(owner) = owner {
                lost.entry(*owner).or_default().push(SlotId { task_manager: id, slot: SlotIndex(i as u16) });
            }
        }
        for (owner, slots) in lost {
            self.outputs.push(Output::SlotsLost { job: owner.job, attempt: owner.attempt, slots });
        }
        if announce {
            self.outputs.push(Output::TaskManagerDead { id });
        }
    }

    /// Picks slot after slot; `None` if the matching free slots are too few.
    fn choose(&self, r: &SlotRequest) -> Option<Vec<SlotId>> {
        let matching: Vec<(&TaskManagerId, &ModelTm)> =
            self.tms.iter().filter(|(_, tm)| tm.matches(&r.placement)).collect();
        if matching.iter().map(|(_, tm)| tm.free()).sum::<usize>() < usize::from(r.count) {
            return None;
        }
        let mut taken: Vec<Vec<usize>> = vec![Vec::new(); matching.len()];
        let mut chosen = Vec::new();
        for _ in 0..r.count {
            let k = (0..matching.len())
                .filter(|&k| matching[k].1.free() > taken[k].len())
                .min_by_key(|&k| {
                    (taken[k].len(), Reverse(matching[k].1.free() - taken[k].len()), *matching[k].0)
                })
                .unwrap();
            let (&id, tm) = matching[k];
            let index =
                (0..tm.slots.len()).find(|i| tm.slots[*i].is_none() && !taken[k].contains(i)).unwrap();
            taken[k].push(index);
            chosen.push(SlotId { task_manager: id, slot: SlotIndex(index as u16) });
        }
        Some(chosen)
    }

    fn grant(&mut self, id: SlotRequestId, r: &SlotRequest, slots: Vec<SlotId>) {
        let owner = SlotOwner { job: r.job, attempt: r.attempt };
        for s in &slots {
            self.tms.get_mut(&s.task_manager).unwrap().slots[usize::from(s.slot.0)] = Some(owner);
        }
        self.outputs.push(Output::SlotsGranted { request: id, job: r.job, attempt: r.attempt, slots });
    }

    fn grant_waiting(&mut self) {
        while let Some((k, slots)) =
            (0..self.pending.len()).find_map(|k| self.choose(&self.pending[k].1).map(|s| (k, s)))
        {
            let (id, r, _) = self.pending.remove(k);
            self.grant(id, &r, slots);
        }
    }

    fn step(&mut self, op: &Op) -> Answer {
        if let Op::Advance { ms } = op {
            self.advance(self.now + Duration::from_millis(*ms));
            return Answer::None;
        }
        self.advance(self.now);
        match *op {
            Op::Register { tm, address, slots, labels, version_ok } => {
                self.register(registration_of(tm, address, slots, labels, version_ok));
                Answer::None
            }
            Op::Heartbeat { tm } => {
                let id = TaskManagerId(tm);
                Answer::Liveness(match self.tms.get_mut(&id) {
                    Some(tm) => {
                        tm.last_heartbeat = self.now;
                        Ok(())
                    }
                    None => Err(UnknownTaskManager(id)),
                })
            }
            Op::Disconnect { tm } => {
                let id = TaskManagerId(tm);
                Answer::Liveness(if self.tms.contains_key(&id) {
                    self.kill(id, true);
                    Ok(())
                } else {
                    Err(UnknownTaskManager(id))
                })
            }
            Op::Request { job, attempt, count, placement } => {
                let r = SlotRequest {
                    job: JobId(job),
                    attempt: AttemptId(attempt),
                    count,
                    placement: labels_of(placement),
                };
                if count == 0 {
                    return Answer::Request(Err(SlotRequestError::ZeroSlots));
                }
                let id = SlotRequestId(self.next_request);
                self.next_request += 1;
                match self.choose(&r) {
                    Some(slots) => self.grant(id, &r, slots),
                    None => self.pending.push((id, r, self.now)),
                }
                Answer::Request(Ok(id))
            }
            Op::Release { job, attempt } => {
                let owner = SlotOwner { job: JobId(job), attempt: AttemptId(attempt) };
                let before = self.pending.len();
                self.pending.retain(|(_, r, _)| (r.job, r.attempt) != (owner.job, owner.attempt));
                let pending_requests_dropped = before - self.pending.len();
                let mut slots = 0;
                for s in self.tms.values_mut().flat_map(|tm| tm.slots.iter_mut()) {
                    if *s == Some(owner) {
                        *s = None;
                        slots += 1;
                    }
                }
                self.grant_waiting();
                Answer::Released(Released { slots, pending_requests_dropped })
            }
            Op::Cancel { job } => {
                let before = self.pending.len();
                self.pending.retain(|(_, r, _)| r.job != JobId(job));
                Answer::Dropped(before - self.pending.len())
            }
            Op::Advance { .. } => unreachable!(),
        }
    }

    /// Labels are always valid here (the operations draw from a small valid set), so the model
    /// checks only what the operations can get wrong.
    fn register(&mut self, r: TaskManagerRegistration) {
        let refuse = |reason| Output::RegistrationRefused { tm: r.id, address: r.address.clone(), reason };
        if r.protocol_version != PROTOCOL_VERSION_DEFAULT {
            let reason = RegistrationRefusal::ProtocolVersion {
                offered: r.protocol_version,
                expected: PROTOCOL_VERSION_DEFAULT,
            };
            return self.outputs.push(refuse(reason));
        }
        if r.slots == 0 {
            return self.outputs.push(refuse(RegistrationRefusal::NoSlots));
        }
        if r.slots > SLOTS_PER_TASK_MANAGER_MAX {
            let reason =
                RegistrationRefusal::TooManySlots { slots: r.slots, max: SLOTS_PER_TASK_MANAGER_MAX };
            return self.outputs.push(refuse(reason));
        }
        let fresh = match self.tms.get_mut(&r.id) {
            Some(live) if live.address != r.address => {
                let reason = RegistrationRefusal::DuplicateId { registered_address: live.address.clone() };
                return self.outputs.push(refuse(reason));
            }
            Some(live) if live.slots.len() == usize::from(r.slots) && live.labels == r.labels => {
                live.last_heartbeat = self.now;
                false
            }
            Some(_) => {
                self.kill(r.id, false);
                true
            }
            None => true,
        };
        if fresh {
            let tm = ModelTm {
                address: r.address,
                labels: r.labels,
                slots: vec![None; usize::from(r.slots)],
                registered_at: self.now,
                last_heartbeat: self.now,
            };
            self.tms.insert(r.id, tm);
        }
        self.outputs
            .push(Output::Registered { tm: r.id, heartbeat_interval: self.config.heartbeat_interval });
        self.grant_waiting();
    }

    fn task_managers(&self) -> Vec<TaskManagerStatus> {
        (self.tms.iter())
            .map(|(&id, tm)| TaskManagerStatus {
                id,
                address: tm.address.clone(),
                labels: tm.labels.clone(),
                slots: (tm.slots.iter().enumerate())
                    .map(|(i, &owner)| SlotStatus {
                        id: SlotId { task_manager: id, slot: SlotIndex(i as u16) },
                        owner,
                    })
                    .collect(),
                free_slots: tm.free() as u16,
                registered_at: tm.registered_at,
                last_heartbeat: tm.last_heartbeat,
                heartbeat_deadline: self.deadline(tm),
            })
            .collect()
    }

    fn pending_requests(&self) -> Vec<PendingRequestStatus> {
        (self.pending.iter())
            .map(|(id, r, since)| {
                let matching: Vec<&ModelTm> =
                    self.tms.values().filter(|tm| tm.matches(&r.placement)).collect();
                PendingRequestStatus {
                    request: *id,
                    job: r.job,
                    attempt: r.attempt,
                    count: r.count,
                    placement: r.placement.clone(),
                    missing_labels: (r.placement.iter())
                        .filter(|(n, v)| !self.tms.values().any(|tm| tm.labels.get(*n) == Some(v)))
                        .map(|(n, v)| (n.clone(), v.clone()))
                        .collect(),
                    matching_task_managers: matching.len() as u32,
                    matching_free_slots: matching.iter().map(|tm| tm.free() as u32).sum(),
                    waiting_since: *since,
                }
            })
            .collect()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.tms.values().map(|tm| self.deadline(tm)).min()
    }
}

/// Applies `op` to the ResourceManager at `now` (advanced first for `Advance`).
fn apply(rm: &mut ResourceManager, now: &mut Instant, op: &Op) -> Answer {
    match *op {
        Op::Register { tm, address, slots, labels, version_ok } => {
            rm.handle_registration(*now, registration_of(tm, address, slots, labels, version_ok));
            Answer::None
        }
        Op::Heartbeat { tm } => Answer::Liveness(rm.handle_heartbeat(*now, TaskManagerId(tm))),
        Op::Disconnect { tm } => Answer::Liveness(rm.handle_disconnect(*now, TaskManagerId(tm))),
        Op::Request { job, attempt, count, placement } => {
            let r = SlotRequest {
                job: JobId(job),
                attempt: AttemptId(attempt),
                count,
                placement: labels_of(placement),
            };
            Answer::Request(rm.handle_slot_request(*now, r))
        }
        Op::Release { job, attempt } => {
            Answer::Released(rm.handle_release(*now, JobId(job), AttemptId(attempt)))
        }
        Op::Cancel { job } => Answer::Dropped(rm.handle_job_cancelled(*now, JobId(job))),
        Op::Advance { ms } => {
            *now = *now + Duration::from_millis(ms);
            rm.handle_timeout(*now);
            Answer::None
        }
    }
}

/// Runs `ops` against a fresh ResourceManager and the model, checking every step; returns the
/// trace of answers and outputs.
fn run(ops: &[Op]) -> Vec<(Answer, Vec<Output>)> {
    let config = ResourceManagerConfig::default();
    let mut rm = ResourceManager::new(config);
    let mut model = Model::new(config);
    let mut now = Instant::ZERO;
    let mut placements: BTreeMap<SlotRequestId, BTreeMap<String, String>> = BTreeMap::new();
    let mut trace = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let answer = apply(&mut rm, &mut now, op);
        let outputs: Vec<Output> = std::iter::from_fn(|| rm.poll_output()).collect();
        rm.assert_invariants();

        let expected_answer = model.step(op);
        let expected_outputs = std::mem::take(&mut model.outputs);
        assert_eq!(answer, expected_answer, "answer of step {step}: {op:?}");
        assert_eq!(outputs, expected_outputs, "outputs of step {step}: {op:?}");
        assert_eq!(rm.task_managers(), model.task_managers(), "TaskManagers after step {step}: {op:?}");
        assert_eq!(rm.pending_requests(), model.pending_requests(), "waiting after step {step}: {op:?}");
        assert_eq!(rm.poll_timeout(), model.poll_timeout(), "timeout after step {step}: {op:?}");

        // Checked again without the model: the properties a driver relies on.
        if let (Op::Request { placement, .. }, Answer::Request(Ok(id))) = (op, &answer) {
            placements.insert(*id, labels_of(*placement));
        }
        for output in &outputs {
            if let Output::SlotsGranted { request, job, attempt, slots } = output {
                for slot in slots {
                    let tm = rm.task_manager(slot.task_manager).expect("granted on a live TaskManager");
                    assert!(placements[request].iter().all(|(n, v)| tm.labels.get(n) == Some(v)));
                    let owner = tm.slots[usize::from(slot.slot.0)].owner;
                    assert_eq!(owner, Some(SlotOwner { job: *job, attempt: *attempt }));
                }
            }
        }
        for waiting in rm.pending_requests() {
            assert!(u32::from(waiting.count) > waiting.matching_free_slots, "{waiting:?} could be granted");
        }
        trace.push((answer, outputs));
    }
    trace
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_resource_manager_follows_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let trace = run(&ops);
        prop_assert_eq!(trace, run(&ops), "the same operations must give the same trace");
    }
}
