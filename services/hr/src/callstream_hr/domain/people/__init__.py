"""People, schedules, attendance, training and attrition: pure functions, no I/O."""
