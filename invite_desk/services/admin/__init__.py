"""Administration use cases (issue 11): people and roles, sign-ins, units, events, the audit
log and the notification emails. Plain values + a UnitOfWork + the operator in, frozen
dataclasses out, DomainError subclasses with a message a person can act on."""
