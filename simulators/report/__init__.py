"""The readiness report: every integration point of the stack with its owners (RACI), its
escalation chain, the scenarios and verify results that prove it, and the gaps left."""
