"""HR's use cases: the business rules (checks, conflicts, computations, the events each change publishes),
run in a unit of work (`unit_of_work.UnitOfWork`) and unit-tested with an in-memory one."""
