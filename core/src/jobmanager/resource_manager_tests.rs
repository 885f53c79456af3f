//! Unit tests of the ResourceManager, one rule each.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::limits::{LABELS_MAX, LABEL_BYTES_MAX};

const SECOND: u64 = 1_000_000_000;

fn at_ms(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()
}

fn registration(id: u64, slots: u16, label_pairs: &[(&str, &str)]) -> TaskManagerRegistration {
    TaskManagerRegistration {
        id: TaskManagerId(id),
        address: format!("10.0.0.{id}:6121"),
        slots,
        labels: labels(label_pairs),
        protocol_version: PROTOCOL_VERSION_DEFAULT,
    }
}

fn request(job: u64, attempt: u32, count: u16, placement: &[(&str, &str)]) -> SlotRequest {
    SlotRequest { job: JobId(job), attempt: AttemptId(attempt), count, placement: labels(placement) }
}

fn slot(tm: u64, index: u16) -> SlotId {
    SlotId { task_manager: TaskManagerId(tm), slot: SlotIndex(index) }
}

fn registered(tm: u64) -> Output {
    Output::Registered { tm: TaskManagerId(tm), heartbeat_interval: Duration::from_secs(1) }
}

fn granted(request: u64, job: u64, attempt: u32, slots: &[(u64, u16)]) -> Output {
    Output::SlotsGranted {
        request: SlotRequestId(request),
        job: JobId(job),
        attempt: AttemptId(attempt),
        slots: slots.iter().map(|&(tm, i)| slot(tm, i)).collect(),
    }
}

fn lost(job: u64, attempt: u32, slots: &[(u64, u16)]) -> Output {
    Output::SlotsLost {
        job: JobId(job),
        attempt: AttemptId(attempt),
        slots: slots.iter().map(|&(tm, i)| slot(tm, i)).collect(),
    }
}

fn dead(tm: u64) -> Output {
    Output::TaskManagerDead { id: TaskManagerId(tm) }
}

/// Drains the outputs and checks the invariants, as every driver step does.
fn drain(rm: &mut ResourceManager) -> Vec<Output> {
    rm.assert_invariants();
    std::iter::from_fn(|| rm.poll_output()).collect()
}

/// A TaskManager for [`cluster`]: `(id, slots, labels)`.
type TaskManagerSpec<'a> = (u64, u16, &'a [(&'a str, &'a str)]);

/// A ResourceManager with TaskManagers `(id, slots, labels)` registered at time 0.
fn cluster(tms: &[TaskManagerSpec]) -> ResourceManager {
    let mut rm = ResourceManager::new(ResourceManagerConfig::default());
    for &(id, slots, label_pairs) in tms {
        rm.handle_registration(Instant::ZERO, registration(id, slots, label_pairs));
        assert_eq!(drain(&mut rm), vec![registered(id)]);
    }
    rm
}

fn refusal(rm: &mut ResourceManager, r: TaskManagerRegistration) -> RegistrationRefusal {
    rm.handle_registration(Instant::ZERO, r);
    match drain(rm).as_slice() {
        [Output::RegistrationRefused { reason, .. }] => reason.clone(),
        other => panic!("expected one refusal, got {other:?}"),
    }
}

// ------------------------------------------------------------------------ registration

#[test]
fn a_registered_task_manager_is_acknowledged_with_all_slots_free() {
    let rm = cluster(&[(1, 3, &[("site", "a")])]);
    let status = rm.task_managers();
    assert_eq!(status.len(), 1);
    let tm = &status[0];
    assert_eq!((tm.id, tm.address.as_str(), tm.free_slots), (TaskManagerId(1), "10.0.0.1:6121", 3));
    assert_eq!(tm.labels, labels(&[("site", "a")]));
    assert_eq!(
        tm.slots.iter().map(|s| (s.id, s.owner)).collect::<Vec<_>>(),
        [(slot(1, 0), None), (slot(1, 1), None), (slot(1, 2), None)]
    );
    assert_eq!((tm.registered_at, tm.last_heartbeat), (Instant::ZERO, Instant::ZERO));
    assert_eq!(tm.heartbeat_deadline, Instant::from_nanos(5 * SECOND));
    assert_eq!((rm.free_slots(), rm.total_slots()), (3, 3));
}

#[test]
fn registrations_are_refused_with_the_exact_reason() {
    let mut rm = cluster(&[]);
    let wrong_version = TaskManagerRegistration { protocol_version: 7, ..registration(1, 2, &[]) };
    assert_eq!(
        refusal(&mut rm, wrong_version),
        RegistrationRefusal::ProtocolVersion { offered: 7, expected: PROTOCOL_VERSION_DEFAULT }
    );
    assert_eq!(refusal(&mut rm, registration(1, 0, &[])), RegistrationRefusal::NoSlots);
    assert_eq!(
        refusal(&mut rm, registration(1, SLOTS_PER_TASK_MANAGER_MAX + 1, &[])),
        RegistrationRefusal::TooManySlots {
            slots: SLOTS_PER_TASK_MANAGER_MAX + 1,
            max: SLOTS_PER_TASK_MANAGER_MAX
        }
    );
    let mut many = registration(1, 2, &[]);
    many.labels = (0..=LABELS_MAX).map(|i| (format!("l{i}"), "v".to_owned())).collect();
    assert_eq!(
        refusal(&mut rm, many),
        RegistrationRefusal::Labels(LabelError::TooMany { labels: LABELS_MAX + 1, max: LABELS_MAX })
    );
    let long_name = "n".repeat(LABEL_BYTES_MAX + 1);
    assert_eq!(
        refusal(&mut rm, registration(1, 2, &[(&long_name, "v")])),
        RegistrationRefusal::Labels(LabelError::NameTooLong {
            name: format!("{}…", "n".repeat(LABEL_BYTES_MAX)),
            bytes: LABEL_BYTES_MAX + 1,
            max: LABEL_BYTES_MAX
        })
    );
    let long_value = "v".repeat(LABEL_BYTES_MAX + 1);
    assert_eq!(
        refusal(&mut rm, registration(1, 2, &[("site", &long_value)])),
        RegistrationRefusal::Labels(LabelError::ValueTooLong {
            name: "site".to_owned(),
            bytes: LABEL_BYTES_MAX + 1,
            max: LABEL_BYTES_MAX
        })
    );
    let no_address = TaskManagerRegistration { address: String::new(), ..registration(1, 2, &[]) };
    assert_eq!(
        refusal(&mut rm, no_address),
        RegistrationRefusal::AddressLength { bytes: 0, max: TASK_MANAGER_ADDRESS_BYTES_MAX }
    );
    // Limits themselves are accepted.
    let mut largest = registration(1, SLOTS_PER_TASK_MANAGER_MAX, &[]);
    largest.labels =
        (0..LABELS_MAX).map(|i| (format!("{i:0>LABEL_BYTES_MAX$}"), "v".repeat(LABEL_BYTES_MAX))).collect();
    rm.handle_registration(Instant::ZERO, largest);
    assert_eq!(drain(&mut rm), vec![registered(1)]);
    assert_eq!(rm.counters().registrations_refused, 7);
}

#[test]
fn refusal_messages_name_the_offending_input() {
    let reason = RegistrationRefusal::TooManySlots { slots: 300, max: 256 };
    assert_eq!(reason.to_string(), "300 slots offered, at most 256 are accepted");
    let reason = RegistrationRefusal::DuplicateId { registered_address: "10.0.0.1:6121".to_owned() };
    assert_eq!(reason.to_string(), "the id is held by a live TaskManager at 10.0.0.1:6121");
}

#[test]
fn a_live_id_from_another_address_is_refused_and_the_owner_is_untouched() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(10), request(1, 0, 1, &[])).unwrap();
    drain(&mut rm);
    let impostor = TaskManagerRegistration { address: "10.9.9.9:6121".to_owned(), ..registration(1, 2, &[]) };
    rm.handle_registration(at_ms(20), impostor);
    assert_eq!(
        drain(&mut rm),
        vec![Output::RegistrationRefused {
            tm: TaskManagerId(1),
            address: "10.9.9.9:6121".to_owned(),
            reason: RegistrationRefusal::DuplicateId { registered_address: "10.0.0.1:6121".to_owned() },
        }]
    );
    assert_eq!(rm.slots_of(JobId(1), AttemptId(0)), vec![slot(1, 0)]);
    // The refusal is no sign of life from the owner.
    assert_eq!(rm.task_manager(TaskManagerId(1)).unwrap().last_heartbeat, Instant::ZERO);
}

#[test]
fn a_repeated_identical_registration_is_acknowledged_and_keeps_its_slots() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(10), request(1, 0, 1, &[])).unwrap();
    drain(&mut rm);
    rm.handle_registration(at_ms(3000), registration(1, 2, &[]));
    assert_eq!(drain(&mut rm), vec![registered(1)]);
    assert_eq!(rm.slots_of(JobId(1), AttemptId(0)), vec![slot(1, 0)]);
    let tm = rm.task_manager(TaskManagerId(1)).unwrap();
    assert_eq!((tm.registered_at, tm.last_heartbeat), (Instant::ZERO, at_ms(3000)));
    assert_eq!(rm.counters().registrations_repeated, 1);
}

#[test]
fn a_registration_with_new_slots_replaces_the_old_one_and_reports_its_slots_lost() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(10), request(1, 0, 2, &[])).unwrap();
    drain(&mut rm);
    rm.handle_registration(at_ms(20), registration(1, 4, &[]));
    assert_eq!(drain(&mut rm), vec![lost(1, 0, &[(1, 0), (1, 1)]), registered(1)]);
    let tm = rm.task_manager(TaskManagerId(1)).unwrap();
    assert_eq!((tm.free_slots, tm.registered_at), (4, at_ms(20)));
    assert_eq!(rm.counters().task_managers_replaced, 1);
}

#[test]
fn registrations_beyond_the_task_manager_limit_are_refused() {
    let mut rm = cluster(&[]);
    for id in 0..TASK_MANAGERS_MAX as u64 {
        rm.handle_registration(Instant::ZERO, registration(id, 1, &[]));
    }
    assert_eq!(drain(&mut rm).len(), TASK_MANAGERS_MAX);
    let last = TASK_MANAGERS_MAX as u64;
    assert_eq!(
        refusal(&mut rm, registration(last, 1, &[])),
        RegistrationRefusal::TooManyTaskManagers { max: TASK_MANAGERS_MAX }
    );
}

// ------------------------------------------------------------------------ placement and grants

#[test]
fn placement_picks_only_task_managers_carrying_every_label() {
    let mut rm = cluster(&[
        (1, 2, &[("site", "a")]),
        (2, 2, &[("site", "a"), ("arch", "arm64")]),
        (3, 2, &[("site", "b"), ("arch", "arm64")]),
    ]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[("site", "a"), ("arch", "arm64")])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(0, 1, 0, &[(2, 0), (2, 1)])]);
    rm.handle_slot_request(at_ms(2), request(2, 0, 2, &[("arch", "arm64")])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(1, 2, 0, &[(3, 0), (3, 1)])]);
    // An empty placement matches every TaskManager.
    rm.handle_slot_request(at_ms(3), request(3, 0, 2, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(2, 3, 0, &[(1, 0), (1, 1)])]);
}

#[test]
fn a_grant_is_all_of_a_request_or_nothing() {
    let mut rm = cluster(&[(1, 2, &[]), (2, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 5, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![]);
    assert_eq!(rm.free_slots(), 4, "nothing is taken for a request that does not fit");
    let waiting = rm.pending_requests();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].count, waiting[0].matching_free_slots, waiting[0].matching_task_managers),
        (5, 4, 2)
    );
    assert_eq!(waiting[0].waiting_since, at_ms(1));
    rm.handle_registration(at_ms(2), registration(3, 1, &[]));
    assert_eq!(
        drain(&mut rm),
        vec![registered(3), granted(0, 1, 0, &[(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)])]
    );
    assert!(rm.pending_requests().is_empty());
}

#[test]
fn a_waiting_request_says_which_labels_no_task_manager_carries() {
    let mut rm = cluster(&[(1, 1, &[("site", "a")])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 1, &[("site", "a"), ("gpu", "yes")])).unwrap();
    let waiting = rm.pending_requests();
    assert_eq!(waiting[0].missing_labels, labels(&[("gpu", "yes")]));
    assert_eq!(waiting[0].placement, labels(&[("site", "a"), ("gpu", "yes")]));
    assert_eq!((waiting[0].matching_task_managers, waiting[0].matching_free_slots), (0, 0));
    // Labels carried by different TaskManagers are not missing, though no one carries both.
    rm.handle_registration(at_ms(2), registration(2, 1, &[("gpu", "yes")]));
    drain(&mut rm);
    let waiting = rm.pending_requests();
    assert!(waiting[0].missing_labels.is_empty());
    assert_eq!(waiting[0].matching_task_managers, 0);
    rm.handle_registration(at_ms(3), registration(3, 1, &[("site", "a"), ("gpu", "yes")]));
    assert_eq!(drain(&mut rm), vec![registered(3), granted(0, 1, 0, &[(3, 0)])]);
}

#[test]
fn waiting_requests_are_served_first_come_first_served() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])).unwrap();
    rm.handle_slot_request(at_ms(2), request(2, 0, 2, &[])).unwrap();
    rm.handle_slot_request(at_ms(3), request(3, 0, 2, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(0, 1, 0, &[(1, 0), (1, 1)])]);
    rm.handle_release(at_ms(4), JobId(1), AttemptId(0));
    assert_eq!(drain(&mut rm), vec![granted(1, 2, 0, &[(1, 0), (1, 1)])]);
    assert_eq!(rm.pending_requests().iter().map(|p| p.request).collect::<Vec<_>>(), [SlotRequestId(2)]);
}

#[test]
fn a_request_that_fits_does_not_wait_behind_an_older_one_that_does_not() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 3, &[])).unwrap();
    rm.handle_slot_request(at_ms(2), request(2, 0, 1, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(1, 2, 0, &[(1, 0)])]);
    // When slots free up, the older request is considered first.
    rm.handle_slot_request(at_ms(3), request(3, 0, 1, &[])).unwrap();
    rm.handle_registration(at_ms(4), registration(2, 2, &[]));
    assert_eq!(drain(&mut rm), vec![granted(2, 3, 0, &[(1, 1)]), registered(2)]);
    rm.handle_registration(at_ms(5), registration(3, 1, &[]));
    assert_eq!(drain(&mut rm), vec![registered(3), granted(0, 1, 0, &[(2, 0), (3, 0), (2, 1)])]);
}

#[test]
fn grants_spread_over_task_managers_most_free_first() {
    let mut rm = cluster(&[(1, 3, &[]), (2, 1, &[]), (3, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 4, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(0, 1, 0, &[(1, 0), (3, 0), (2, 0), (1, 1)])]);
    // Now 1, 0, 1 free: the tie between TaskManagers 1 and 3 goes to the lower id.
    rm.handle_slot_request(at_ms(2), request(2, 0, 1, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(1, 2, 0, &[(1, 2)])]);
}

#[test]
fn a_grant_takes_the_lowest_free_slot_indices() {
    let mut rm = cluster(&[(1, 4, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(2, 0, 1, &[])).unwrap();
    rm.handle_release(at_ms(2), JobId(1), AttemptId(0));
    drain(&mut rm);
    rm.handle_slot_request(at_ms(3), request(3, 0, 3, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(2, 3, 0, &[(1, 0), (1, 1), (1, 3)])]);
}

// ------------------------------------------------------------------------ release and cancel

#[test]
fn a_release_frees_the_attempts_slots_and_drops_its_waiting_requests() {
    let mut rm = cluster(&[(1, 2, &[]), (2, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(1, 1, 1, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(1, 0, 4, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(2, 0, 2, &[])).unwrap();
    assert_eq!(drain(&mut rm), vec![granted(0, 1, 0, &[(1, 0), (2, 0)]), granted(1, 1, 1, &[(1, 1)])]);
    let released = rm.handle_release(at_ms(2), JobId(1), AttemptId(0));
    assert_eq!(released, Released { slots: 2, pending_requests_dropped: 1 });
    assert_eq!(drain(&mut rm), vec![granted(3, 2, 0, &[(2, 0), (1, 0)])]);
    assert_eq!(rm.slots_of(JobId(1), AttemptId(0)), vec![]);
    assert_eq!(rm.slots_of(JobId(1), AttemptId(1)), vec![slot(1, 1)], "another attempt keeps its slots");
    // Releasing an attempt that holds nothing is harmless.
    assert_eq!(rm.handle_release(at_ms(3), JobId(9), AttemptId(0)), Released::default());
    assert_eq!(rm.counters().slots_released, 2);
}

#[test]
fn a_cancelled_job_drops_its_waiting_requests_but_keeps_its_slots_until_released() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 1, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(1, 0, 5, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(1, 1, 5, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(2, 0, 5, &[])).unwrap();
    drain(&mut rm);
    assert_eq!(rm.handle_job_cancelled(at_ms(2), JobId(1)), 2);
    assert_eq!(rm.pending_requests().iter().map(|p| p.job).collect::<Vec<_>>(), [JobId(2)]);
    assert_eq!(rm.slots_of(JobId(1), AttemptId(0)), vec![slot(1, 0)]);
    assert_eq!(drain(&mut rm), vec![]);
}

#[test]
fn slot_requests_are_refused_with_the_exact_reason() {
    let mut rm = cluster(&[(1, 1, &[])]);
    assert_eq!(rm.handle_slot_request(at_ms(1), request(1, 0, 0, &[])), Err(SlotRequestError::ZeroSlots));
    assert_eq!(
        rm.handle_slot_request(at_ms(1), request(1, 0, SLOTS_PER_REQUEST_MAX + 1, &[])),
        Err(SlotRequestError::TooManySlots { count: SLOTS_PER_REQUEST_MAX + 1, max: SLOTS_PER_REQUEST_MAX })
    );
    assert_eq!(
        rm.handle_slot_request(at_ms(1), request(1, 0, 1, &[("", "x")])),
        Err(SlotRequestError::Placement(LabelError::EmptyName))
    );
    for _ in 0..PENDING_SLOT_REQUESTS_MAX {
        rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])).unwrap();
    }
    assert_eq!(
        rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])),
        Err(SlotRequestError::TooManyPending { max: PENDING_SLOT_REQUESTS_MAX })
    );
    // A request granted at once needs no room in the queue.
    assert_eq!(
        rm.handle_slot_request(at_ms(1), request(2, 0, 1, &[])),
        Ok(SlotRequestId(PENDING_SLOT_REQUESTS_MAX as u64))
    );
    assert_eq!(drain(&mut rm), vec![granted(PENDING_SLOT_REQUESTS_MAX as u64, 2, 0, &[(1, 0)])]);
    assert_eq!(rm.counters().slot_requests_refused, 4);
}

// ------------------------------------------------------------------------ heartbeats and death

#[test]
fn a_silent_task_manager_dies_at_exactly_the_timeout_and_not_before() {
    let mut rm = cluster(&[(1, 1, &[])]);
    let deadline = Instant::from_nanos(5 * SECOND);
    assert_eq!(rm.poll_timeout(), Some(deadline));
    rm.handle_timeout(Instant::from_nanos(5 * SECOND - 1));
    assert_eq!(drain(&mut rm), vec![]);
    assert!(rm.task_manager(TaskManagerId(1)).is_some());
    rm.handle_timeout(deadline);
    assert_eq!(drain(&mut rm), vec![dead(1)]);
    assert_eq!(rm.poll_timeout(), None);
    assert_eq!(rm.counters().task_managers_timed_out, 1);
}

#[test]
fn heartbeats_move_the_deadline() {
    let mut rm = cluster(&[(1, 1, &[]), (2, 1, &[])]);
    rm.handle_heartbeat(at_ms(4000), TaskManagerId(1)).unwrap();
    assert_eq!(rm.poll_timeout(), Some(at_ms(5000)), "TaskManager 2 is due first");
    rm.handle_timeout(at_ms(5000));
    assert_eq!(drain(&mut rm), vec![dead(2)]);
    assert_eq!(rm.poll_timeout(), Some(at_ms(9000)));
    assert_eq!(rm.task_manager(TaskManagerId(1)).unwrap().last_heartbeat, at_ms(4000));
    rm.handle_timeout(at_ms(8999));
    assert_eq!(drain(&mut rm), vec![]);
}

#[test]
fn lost_slots_are_reported_to_each_attempt_that_held_them() {
    let mut rm = cluster(&[(1, 3, &[]), (2, 3, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(2, 3, 3, &[])).unwrap();
    assert_eq!(
        drain(&mut rm),
        vec![granted(0, 1, 0, &[(1, 0), (2, 0)]), granted(1, 2, 3, &[(1, 1), (2, 1), (1, 2)])]
    );
    rm.handle_heartbeat(at_ms(1000), TaskManagerId(2)).unwrap();
    rm.handle_timeout(at_ms(5000));
    assert_eq!(drain(&mut rm), vec![lost(1, 0, &[(1, 0)]), lost(2, 3, &[(1, 1), (1, 2)]), dead(1)]);
    assert_eq!(rm.slots_of(JobId(1), AttemptId(0)), vec![slot(2, 0)]);
    assert_eq!(rm.slots_of(JobId(2), AttemptId(3)), vec![slot(2, 1)]);
    assert_eq!(rm.counters().slots_lost, 3);
}

#[test]
fn several_task_managers_due_together_die_in_deadline_then_id_order() {
    let mut rm = cluster(&[(2, 1, &[]), (1, 1, &[]), (3, 1, &[])]);
    rm.handle_heartbeat(at_ms(100), TaskManagerId(1)).unwrap();
    rm.handle_timeout(at_ms(6000));
    assert_eq!(drain(&mut rm), vec![dead(2), dead(3), dead(1)]);
}

#[test]
fn heartbeats_from_unknown_or_dead_task_managers_are_refused() {
    let mut rm = cluster(&[(1, 1, &[])]);
    assert_eq!(rm.handle_heartbeat(at_ms(1), TaskManagerId(7)), Err(UnknownTaskManager(TaskManagerId(7))));
    rm.handle_timeout(at_ms(5000));
    drain(&mut rm);
    assert_eq!(rm.handle_heartbeat(at_ms(5001), TaskManagerId(1)), Err(UnknownTaskManager(TaskManagerId(1))));
    assert_eq!(rm.counters().heartbeats_from_unknown, 2);
    assert_eq!(drain(&mut rm), vec![]);
}

#[test]
fn inputs_apply_the_timeouts_due_at_their_instant_first() {
    let mut rm = cluster(&[(1, 1, &[])]);
    // The driver delivers a heartbeat at the deadline before calling handle_timeout.
    assert_eq!(rm.handle_heartbeat(at_ms(5000), TaskManagerId(1)), Err(UnknownTaskManager(TaskManagerId(1))));
    assert_eq!(drain(&mut rm), vec![dead(1)]);
}

#[test]
fn a_disconnected_task_manager_dies_at_once() {
    let mut rm = cluster(&[(1, 2, &[])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 1, &[])).unwrap();
    drain(&mut rm);
    rm.handle_disconnect(at_ms(2), TaskManagerId(1)).unwrap();
    assert_eq!(drain(&mut rm), vec![lost(1, 0, &[(1, 0)]), dead(1)]);
    assert_eq!(rm.handle_disconnect(at_ms(3), TaskManagerId(1)), Err(UnknownTaskManager(TaskManagerId(1))));
}

#[test]
fn a_task_manager_registering_after_its_death_is_a_fresh_one() {
    let mut rm = cluster(&[(1, 2, &[("site", "a")])]);
    rm.handle_slot_request(at_ms(1), request(1, 0, 2, &[])).unwrap();
    rm.handle_slot_request(at_ms(1), request(2, 0, 2, &[])).unwrap();
    drain(&mut rm);
    rm.handle_timeout(at_ms(5000));
    assert_eq!(drain(&mut rm), vec![lost(1, 0, &[(1, 0), (1, 1)]), dead(1)]);
    // Same id, another address and shape: no conflict with the dead registration.
    let again = TaskManagerRegistration { address: "10.0.0.99:6121".to_owned(), ..registration(1, 3, &[]) };
    rm.handle_registration(at_ms(7000), again);
    assert_eq!(drain(&mut rm), vec![registered(1), granted(1, 2, 0, &[(1, 0), (1, 1)])]);
    let tm = rm.task_manager(TaskManagerId(1)).unwrap();
    assert_eq!((tm.registered_at, tm.free_slots, tm.address.as_str()), (at_ms(7000), 1, "10.0.0.99:6121"));
    assert!(tm.labels.is_empty());
    assert_eq!(rm.slots_of(JobId(1), AttemptId(0)), vec![], "the old owner does not get its slots back");
    assert_eq!(rm.poll_timeout(), Some(at_ms(12_000)));
}

#[test]
fn poll_timeout_is_none_without_task_managers() {
    let rm = cluster(&[]);
    assert_eq!(rm.poll_timeout(), None);
}

#[test]
#[should_panic(expected = "time went back")]
fn time_going_back_is_a_driver_bug() {
    let mut rm = cluster(&[]);
    rm.handle_timeout(at_ms(10));
    rm.handle_timeout(at_ms(9));
}
