"""Step definitions by role; `simulators.bdd.plugin` registers each module with pytest."""
