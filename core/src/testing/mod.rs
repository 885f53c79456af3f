//! Deterministic test harnesses shared by the core's tests and, later, the simulator: a whole
//! cluster — a JobManager and TaskManagers — in one thread, with in-memory connections, simulated
//! time, and a seeded order of events.

pub mod cluster;
