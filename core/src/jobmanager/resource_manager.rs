//! The ResourceManager: registers TaskManagers, tracks every task slot, grants slots to
//! JobMasters, and declares TaskManagers dead when their heartbeats stop.
//!
//! # Model
//!
//! A live TaskManager offers slots `0..n`; each slot is free or owned by one attempt of one job
//! ([`SlotOwner`]). A JobMaster asks for `count` slots on TaskManagers that carry its placement
//! labels; the request is granted whole as soon as enough matching slots are free, or waits.
//! Waiting requests are considered first-come-first-served every time slots become free: the
//! oldest request that fits is granted first, and a request that does not fit does not block a
//! younger one that does (so no request waits while it could be granted — but a large request can
//! be overtaken by smaller ones while the cluster is nearly full).
//!
//! A grant spreads over TaskManagers: slot after slot goes to the matching TaskManager that has
//! given the fewest slots to this grant so far, then the one with the most free slots, then the
//! lowest id; on a TaskManager the lowest free slot index is taken. So the slots of a grant lie on
//! as many machines as possible, and consecutive slots on different ones.
//!
//! A TaskManager is dead when no heartbeat has arrived for `heartbeat_timeout` (at exactly that
//! instant, not before) or when the driver reports it disconnected. A dead TaskManager is
//! forgotten: its slots are released, every attempt that held some is told which
//! ([`Output::SlotsLost`]), and the same id may later register again as a fresh TaskManager.
//!
//! # Contract
//!
//! Call a `handle_*` method with the current time (never earlier than a previous call's), then
//! drain [`ResourceManager::poll_output`], then arm a timer for
//! [`ResourceManager::poll_timeout`] and call [`ResourceManager::handle_timeout`] when it fires.
//! Every `handle_*` first applies the timeouts due at `now`, so the outcome never depends on
//! whether the driver called `handle_timeout` before delivering an input at the same instant.
//!
//! Registrations come from remote peers and are answered with outputs. Slot requests, releases
//! and cancellations come from JobMasters in the same process and are refused synchronously.
//!
//! A live TaskManager that registers again from the same address with the same slots and labels
//! is taken for a retry whose answer was lost: it is acknowledged again and keeps its slots. From
//! the same address with other slots or labels, it restarted with a new configuration: the old
//! registration is dropped (its owners get `SlotsLost`) and the new one registered. From another
//! address, the id is someone else's and the registration is refused.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use super::resource_types::*;
use crate::ids::{AttemptId, JobId, SlotId, SlotIndex, TaskManagerId};
use crate::limits::{
    PENDING_SLOT_REQUESTS_MAX, SLOTS_PER_REQUEST_MAX, SLOTS_PER_TASK_MANAGER_MAX, TASK_MANAGERS_MAX,
    TASK_MANAGER_ADDRESS_BYTES_MAX,
};
use crate::time::Instant;

/// The ResourceManager role. See the module documentation for its model and contract.
#[derive(Debug)]
pub struct ResourceManager {
    config: ResourceManagerConfig,
    /// The latest time given to a `handle_*` call.
    now: Instant,
    task_managers: BTreeMap<TaskManagerId, TaskManager>,
    /// Every live TaskManager's heartbeat deadline, earliest first.
    deadlines: BTreeSet<(Instant, TaskManagerId)>,
    /// Waiting requests in arrival order (ascending ids).
    pending: VecDeque<PendingRequest>,
    /// The slots each attempt holds; an attempt holding none has no entry.
    holdings: BTreeMap<SlotOwner, Holding>,
    next_request: u64,
    outputs: VecDeque<Output>,
    counters: ResourceManagerCounters,
}

#[derive(Debug)]
struct TaskManager {
    address: String,
    labels: BTreeMap<String, String>,
    /// Indexed by `SlotIndex`.
    slots: Vec<Option<SlotOwner>>,
    free_slots: u16,
    registered_at: Instant,
    last_heartbeat: Instant,
}

impl TaskManager {
    fn matches(&self, placement: &BTreeMap<String, String>) -> bool {
        placement.iter().all(|(name, value)| self.labels.get(name) == Some(value))
    }

    fn free_indices(&self) -> impl Iterator<Item = SlotIndex> + '_ {
        self.slots.iter().enumerate().filter(|(_, owner)| owner.is_none()).map(|(i, _)| slot_index(i))
    }
}

#[derive(Debug)]
struct PendingRequest {
    id: SlotRequestId,
    request: SlotRequest,
    since: Instant,
}

/// The slots one attempt holds, with the totals that must balance: every slot granted is still
/// held or was lost (released slots leave with the whole entry).
#[derive(Debug, Default)]
struct Holding {
    slots: BTreeSet<SlotId>,
    slots_granted: u64,
    slots_lost: u64,
}

/// How a registration that passed the checks is admitted.
enum Admission {
    New,
    Repeated,
    Replacing,
}

fn slot_index(i: usize) -> SlotIndex {
    SlotIndex(u16::try_from(i).expect("slot vectors hold at most SLOTS_PER_TASK_MANAGER_MAX slots"))
}

impl ResourceManager {
    /// A ResourceManager with no TaskManagers. `config` must be valid
    /// ([`ResourceManagerConfig::validate`]).
    pub fn new(config: ResourceManagerConfig) -> ResourceManager {
        if let Err(e) = config.validate() {
            panic!("invalid ResourceManager configuration: {e}");
        }
        ResourceManager {
            config,
            now: Instant::ZERO,
            task_managers: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            pending: VecDeque::new(),
            holdings: BTreeMap::new(),
            next_request: 0,
            outputs: VecDeque::new(),
            counters: ResourceManagerCounters::default(),
        }
    }

    pub fn config(&self) -> &ResourceManagerConfig {
        &self.config
    }

    pub fn counters(&self) -> &ResourceManagerCounters {
        &self.counters
    }

    // ---------------------------------------------------------------- inputs

    /// A TaskManager asks to join. Answered with [`Output::Registered`] or
    /// [`Output::RegistrationRefused`]; new free slots may grant waiting requests.
    pub fn handle_registration(&mut self, now: Instant, registration: TaskManagerRegistration) {
        self.advance_to(now);
        let id = registration.id;
        let admission = match self.admit(&registration) {
            Ok(admission) => admission,
            Err(reason) => {
                self.counters.registrations_refused += 1;
                self.outputs.push_back(Output::RegistrationRefused {
                    tm: id,
                    address: registration.address,
                    reason,
                });
                return;
            }
        };
        match admission {
            Admission::Repeated => {
                self.counters.registrations_repeated += 1;
                self.touch(id, now);
            }
            Admission::Replacing | Admission::New => {
                if let Admission::Replacing = admission {
                    self.counters.task_managers_replaced += 1;
                    self.forget(id);
                }
                self.counters.registrations += 1;
                let slots = registration.slots;
                let tm = TaskManager {
                    address: registration.address,
                    labels: registration.labels,
                    slots: vec![None; usize::from(slots)],
                    free_slots: slots,
                    registered_at: now,
                    last_heartbeat: now,
                };
                assert!(self.deadlines.insert((now + self.config.heartbeat_timeout, id)));
                assert!(self.task_managers.insert(id, tm).is_none(), "{id} was checked to be absent");
                assert!(self.task_managers.len() <= TASK_MANAGERS_MAX);
            }
        }
        self.outputs
            .push_back(Output::Registered { tm: id, heartbeat_interval: self.config.heartbeat_interval });
        self.grant_waiting();
    }

    /// A sign of life from TaskManager `tm`. An unknown TaskManager (never registered, or already
    /// declared dead) is counted and refused: it must register again.
    pub fn handle_heartbeat(&mut self, now: Instant, tm: TaskManagerId) -> Result<(), UnknownTaskManager> {
        self.advance_to(now);
        if !self.task_managers.contains_key(&tm) {
            self.counters.heartbeats_from_unknown += 1;
            return Err(UnknownTaskManager(tm));
        }
        self.touch(tm, now);
        Ok(())
    }

    /// The driver lost TaskManager `tm` (its connection closed): it is declared dead now rather
    /// than at its heartbeat deadline.
    pub fn handle_disconnect(&mut self, now: Instant, tm: TaskManagerId) -> Result<(), UnknownTaskManager> {
        self.advance_to(now);
        if !self.task_managers.contains_key(&tm) {
            return Err(UnknownTaskManager(tm));
        }
        self.counters.task_managers_disconnected += 1;
        self.declare_dead(tm);
        Ok(())
    }

    /// A JobMaster asks for slots. The request is granted at once if enough matching slots are
    /// free ([`Output::SlotsGranted`] follows), and waits otherwise.
    pub fn handle_slot_request(
        &mut self,
        now: Instant,
        request: SlotRequest,
    ) -> Result<SlotRequestId, SlotRequestError> {
        self.advance_to(now);
        let checked = Self::check_request(&request).and_then(|()| {
            let grant = self.choose_slots(&request);
            if grant.is_none() && self.pending.len() >= PENDING_SLOT_REQUESTS_MAX {
                return Err(SlotRequestError::TooManyPending { max: PENDING_SLOT_REQUESTS_MAX });
            }
            Ok(grant)
        });
        let grant = checked.inspect_err(|_| self.counters.slot_requests_refused += 1)?;
        let id = SlotRequestId(self.next_request);
        self.next_request += 1;
        let pending = PendingRequest { id, request, since: now };
        // Only the new request can have become grantable: the waiting ones were not, and no slot
        // was freed.
        match grant {
            Some(slots) => self.grant(pending, slots),
            None => self.pending.push_back(pending),
        }
        Ok(id)
    }

    /// Attempt `attempt` of `job` ended: its slots are freed and its waiting requests dropped. Freed
    /// slots may grant waiting requests of others.
    pub fn handle_release(&mut self, now: Instant, job: JobId, attempt: AttemptId) -> Released {
        self.advance_to(now);
        let owner = SlotOwner { job, attempt };
        let pending_requests_dropped = self.drop_waiting(|r| r.job == job && r.attempt == attempt);
        let holding = self.holdings.remove(&owner).unwrap_or_default();
        for slot in &holding.slots {
            let tm =
                self.task_managers.get_mut(&slot.task_manager).expect("held slots are on live TaskManagers");
            let entry = &mut tm.slots[usize::from(slot.slot.0)];
            assert_eq!(*entry, Some(owner), "{slot} is held by {owner:?}");
            *entry = None;
            tm.free_slots += 1;
        }
        self.counters.slots_released += holding.slots.len() as u64;
        if !holding.slots.is_empty() {
            self.grant_waiting();
        }
        Released { slots: holding.slots.len(), pending_requests_dropped }
    }

    /// Job `job` was cancelled: its waiting requests (of every attempt) are dropped. Its slots stay
    /// held until the JobMaster releases each attempt, when its tasks have stopped.
    pub fn handle_job_cancelled(&mut self, now: Instant, job: JobId) -> usize {
        self.advance_to(now);
        self.drop_waiting(|r| r.job == job)
    }

    /// Declares dead every TaskManager whose heartbeat deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_to(now);
    }

    // ---------------------------------------------------------------- outputs

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest heartbeat deadline of a live TaskManager: when `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    // ---------------------------------------------------------------- queries

    /// Every live TaskManager in id order, with its slots.
    /// The registered TaskManagers' ids, in order.
    pub fn task_manager_ids(&self) -> Vec<TaskManagerId> {
        self.task_managers.keys().copied().collect()
    }

    pub fn task_managers(&self) -> Vec<TaskManagerStatus> {
        self.task_managers.keys().map(|&id| self.task_manager(id).expect("a listed id")).collect()
    }

    pub fn task_manager(&self, id: TaskManagerId) -> Option<TaskManagerStatus> {
        let tm = self.task_managers.get(&id)?;
        Some(TaskManagerStatus {
            id,
            address: tm.address.clone(),
            labels: tm.labels.clone(),
            slots: (tm.slots.iter().enumerate())
                .map(|(i, &owner)| SlotStatus { id: SlotId { task_manager: id, slot: slot_index(i) }, owner })
                .collect(),
            free_slots: tm.free_slots,
            registered_at: tm.registered_at,
            last_heartbeat: tm.last_heartbeat,
            heartbeat_deadline: tm.last_heartbeat + self.config.heartbeat_timeout,
        })
    }

    /// Every waiting request in the order it will be considered, with what it waits for.
    pub fn pending_requests(&self) -> Vec<PendingRequestStatus> {
        self.pending
            .iter()
            .map(|p| {
                let r = &p.request;
                let matching = self.task_managers.values().filter(|tm| tm.matches(&r.placement));
                let (tms, free) =
                    matching.fold((0u32, 0u32), |(n, f), tm| (n + 1, f + u32::from(tm.free_slots)));
                let carried = |(name, value): &(&String, &String)| {
                    self.task_managers.values().any(|tm| tm.labels.get(*name) == Some(*value))
                };
                PendingRequestStatus {
                    request: p.id,
                    job: r.job,
                    attempt: r.attempt,
                    count: r.count,
                    placement: r.placement.clone(),
                    missing_labels: (r.placement.iter())
                        .filter(|label| !carried(label))
                        .map(|(n, v)| (n.clone(), v.clone()))
                        .collect(),
                    matching_task_managers: tms,
                    matching_free_slots: free,
                    waiting_since: p.since,
                }
            })
            .collect()
    }

    /// The slots attempt `attempt` of `job` holds, in slot order.
    pub fn slots_of(&self, job: JobId, attempt: AttemptId) -> Vec<SlotId> {
        self.holdings
            .get(&SlotOwner { job, attempt })
            .map(|h| h.slots.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn free_slots(&self) -> u32 {
        self.task_managers.values().map(|tm| u32::from(tm.free_slots)).sum()
    }

    pub fn total_slots(&self) -> u32 {
        self.task_managers.values().map(|tm| tm.slots.len() as u32).sum()
    }

    // ---------------------------------------------------------------- internals

    /// Moves time to `now` and declares dead every TaskManager whose deadline has come.
    fn advance_to(&mut self, now: Instant) {
        assert!(now >= self.now, "time went back from {:?} to {now:?}", self.now);
        self.now = now;
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.counters.task_managers_timed_out += 1;
            self.declare_dead(id);
        }
    }

    fn declare_dead(&mut self, id: TaskManagerId) {
        self.forget(id);
        self.outputs.push_back(Output::TaskManagerDead { id });
    }

    /// Removes TaskManager `id`, releasing its slots and telling each owner what it lost.
    fn forget(&mut self, id: TaskManagerId) {
        let tm = self.task_managers.remove(&id).expect("only live TaskManagers are forgotten");
        assert!(self.deadlines.remove(&(tm.last_heartbeat + self.config.heartbeat_timeout, id)));
        let mut lost: BTreeMap<SlotOwner, Vec<SlotId>> = BTreeMap::new();
        for (i, owner) in tm.slots.iter().enumerate() {
            if let Some(owner) = owner {
                lost.entry(*owner).or_default().push(SlotId { task_manager: id, slot: slot_index(i) });
            }
        }
        for (owner, slots) in lost {
            let holding = self.holdings.get_mut(&owner).expect("an allocated slot's owner holds it");
            for slot in &slots {
                assert!(holding.slots.remove(slot), "{slot} was in its owner's holding");
            }
            holding.slots_lost += slots.len() as u64;
            if holding.slots.is_empty() {
                self.holdings.remove(&owner);
            }
            self.counters.slots_lost += slots.len() as u64;
            self.outputs.push_back(Output::SlotsLost { job: owner.job, attempt: owner.attempt, slots });
        }
    }

    /// Moves a live TaskManager's heartbeat deadline to `now + heartbeat_timeout`.
    fn touch(&mut self, id: TaskManagerId, now: Instant) {
        let timeout = self.config.heartbeat_timeout;
        let tm = self.task_managers.get_mut(&id).expect("only live TaskManagers are touched");
        assert!(self.deadlines.remove(&(tm.last_heartbeat + timeout, id)));
        tm.last_heartbeat = now;
        assert!(self.deadlines.insert((now + timeout, id)));
    }

    /// Checks a registration in a fixed order (the version first: with another version, the other
    /// fields may not mean what we read) and decides how to admit it.
    fn admit(&self, r: &TaskManagerRegistration) -> Result<Admission, RegistrationRefusal> {
        if r.protocol_version != self.config.protocol_version {
            return Err(RegistrationRefusal::ProtocolVersion {
                offered: r.protocol_version,
                expected: self.config.protocol_version,
            });
        }
        if r.address.is_empty() || r.address.len() > TASK_MANAGER_ADDRESS_BYTES_MAX {
            return Err(RegistrationRefusal::AddressLength {
                bytes: r.address.len(),
                max: TASK_MANAGER_ADDRESS_BYTES_MAX,
            });
        }
        if r.slots == 0 {
            return Err(RegistrationRefusal::NoSlots);
        }
        if r.slots > SLOTS_PER_TASK_MANAGER_MAX {
            return Err(RegistrationRefusal::TooManySlots {
                slots: r.slots,
                max: SLOTS_PER_TASK_MANAGER_MAX,
            });
        }
        check_labels(&r.labels)?;
        match self.task_managers.get(&r.id) {
            Some(live) if live.address != r.address => {
                Err(RegistrationRefusal::DuplicateId { registered_address: live.address.clone() })
            }
            Some(live) if live.slots.len() == usize::from(r.slots) && live.labels == r.labels => {
                Ok(Admission::Repeated)
            }
            Some(_) => Ok(Admission::Replacing),
            None if self.task_managers.len() >= TASK_MANAGERS_MAX => {
                Err(RegistrationRefusal::TooManyTaskManagers { max: TASK_MANAGERS_MAX })
            }
            None => Ok(Admission::New),
        }
    }

    fn check_request(r: &SlotRequest) -> Result<(), SlotRequestError> {
        if r.count == 0 {
            return Err(SlotRequestError::ZeroSlots);
        }
        if r.count > SLOTS_PER_REQUEST_MAX {
            return Err(SlotRequestError::TooManySlots { count: r.count, max: SLOTS_PER_REQUEST_MAX });
        }
        check_labels(&r.placement)?;
        Ok(())
    }

    /// The slots a grant of `request` would take now, in grant order, or `None` if too few
    /// matching slots are free. Round `k` takes one slot from every matching TaskManager with more
    /// than `k` free slots, most free first, ties by id — which is the spreading rule of the module
    /// documentation.
    fn choose_slots(&self, request: &SlotRequest) -> Option<Vec<SlotId>> {
        let count = usize::from(request.count);
        let mut candidates: Vec<(TaskManagerId, &TaskManager)> = (self.task_managers.iter())
            .filter(|(_, tm)| tm.free_slots > 0 && tm.matches(&request.placement))
            .map(|(&id, tm)| (id, tm))
            .collect();
        let free: usize = candidates.iter().map(|(_, tm)| usize::from(tm.free_slots)).sum();
        if free < count {
            return None;
        }
        candidates.sort_by_key(|&(id, tm)| (Reverse(tm.free_slots), id));
        let mut free_indices: Vec<_> = candidates.iter().map(|(_, tm)| tm.free_indices()).collect();
        let mut chosen = Vec::with_capacity(count);
        for round in 0.. {
            for (k, &(id, tm)) in candidates.iter().enumerate() {
                if chosen.len() == count {
                    return Some(chosen);
                }
                if tm.free_slots <= round {
                    // Sorted by free slots: no later candidate has a slot for this round either.
                    break;
                }
                let slot = free_indices[k].next().expect("free_slots counts the free indices");
                chosen.push(SlotId { task_manager: id, slot });
            }
            if chosen.len() == count {
                return Some(chosen);
            }
        }
        unreachable!("enough free slots were counted")
    }

    /// Allocates `slots` to `pending`'s attempt and emits the grant.
    fn grant(&mut self, pending: PendingRequest, slots: Vec<SlotId>) {
        let request = pending.request;
        assert_eq!(slots.len(), usize::from(request.count), "a grant is all of a request");
        let owner = SlotOwner { job: request.job, attempt: request.attempt };
        let holding = self.holdings.entry(owner).or_default();
        for slot in &slots {
            let tm = self.task_managers.get_mut(&slot.task_manager).expect("chosen from live TaskManagers");
            assert!(tm.matches(&request.placement));
            let entry = &mut tm.slots[usize::from(slot.slot.0)];
            assert_eq!(*entry, None, "{slot} was chosen free");
            *entry = Some(owner);
            tm.free_slots -= 1;
            assert!(holding.slots.insert(*slot));
        }
        holding.slots_granted += slots.len() as u64;
        self.counters.slots_granted += slots.len() as u64;
        self.outputs.push_back(Output::SlotsGranted {
            request: pending.id,
            job: request.job,
            attempt: request.attempt,
            slots,
        });
    }

    /// Grants every waiting request that fits, oldest first. One pass suffices: a request skipped
    /// did not fit, and the grants after it only took slots away.
    fn grant_waiting(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            match self.choose_slots(&self.pending[i].request) {
                Some(slots) => {
                    let pending = self.pending.remove(i).expect("index checked");
                    self.grant(pending, slots);
                }
                None => i += 1,
            }
        }
    }

    fn drop_waiting(&mut self, drop: impl Fn(&SlotRequest) -> bool) -> usize {
        let before = self.pending.len();
        self.pending.retain(|p| !drop(&p.request));
        let dropped = before - self.pending.len();
        self.counters.slot_requests_dropped += dropped as u64;
        dropped
    }

    // ---------------------------------------------------------------- invariants

    /// Panics if the slot accounting is inconsistent: run after every step in tests and in the
    /// simulator.
    pub fn assert_invariants(&self) {
        assert!(self.task_managers.len() <= TASK_MANAGERS_MAX);
        assert_eq!(self.deadlines.len(), self.task_managers.len());
        let mut allocated = 0usize;
        for (&id, tm) in &self.task_managers {
            let deadline = tm.last_heartbeat + self.config.heartbeat_timeout;
            assert!(self.deadlines.contains(&(deadline, id)), "{id}'s deadline is indexed");
            assert!(deadline > self.now, "{id} outlived its heartbeat deadline");
            assert!(!tm.slots.is_empty() && tm.slots.len() <= usize::from(SLOTS_PER_TASK_MANAGER_MAX));
            assert!(check_labels(&tm.labels).is_ok());
            let free = tm.slots.iter().filter(|s| s.is_none()).count();
            assert_eq!(usize::from(tm.free_slots), free, "{id}'s free-slot count");
            for (i, owner) in tm.slots.iter().enumerate() {
                if let Some(owner) = owner {
                    let slot = SlotId { task_manager: id, slot: slot_index(i) };
                    let holding = self.holdings.get(owner).expect("an owner of a slot has a holding");
                    assert!(holding.slots.contains(&slot), "{slot} is in {owner:?}'s holding");
                    allocated += 1;
                }
            }
        }
        // Each slot of a live TaskManager has one owner, and every held slot maps back to its
        // owner: with equal totals, no slot is held twice and none is held on a dead TaskManager.
        let mut held = 0usize;
        for (owner, holding) in &self.holdings {
            assert!(!holding.slots.is_empty(), "{owner:?} holds no slots but has an entry");
            assert_eq!(holding.slots_granted, holding.slots.len() as u64 + holding.slots_lost);
            for slot in &holding.slots {
                let tm =
                    self.task_managers.get(&slot.task_manager).expect("held slots are on live TaskManagers");
                assert_eq!(tm.slots.get(usize::from(slot.slot.0)), Some(&Some(*owner)));
            }
            held += holding.slots.len();
        }
        assert_eq!(allocated, held);
        assert!(self.pending.len() <= PENDING_SLOT_REQUESTS_MAX);
        let mut previous = None;
        for p in &self.pending {
            assert!(previous < Some(p.id), "waiting requests are in arrival order");
            assert!(p.id.0 < self.next_request);
            previous = Some(p.id);
            assert!(Self::check_request(&p.request).is_ok());
            assert!(self.choose_slots(&p.request).is_none(), "{} waits but could be granted", p.id);
        }
    }
}

#[cfg(test)]
#[path = "resource_manager_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "resource_manager_model_tests.rs"]
mod model_tests;
