"""Every scenario of features/, run in-process by the step library (simulators.bdd)."""

from pytest_bdd import scenarios

scenarios("../../features")
