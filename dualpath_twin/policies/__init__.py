"""Loading designs behind one interface; importing this package registers the built-in ones."""

from dualpath_twin.policies import basic, dualpath, dualpath_split, layerwise, oracle  # noqa: F401  (registration)
from dualpath_twin.policies.base import ClusterView, Policy, RequestInfo, get_policy, policy_names, register

__all__ = ["ClusterView", "Policy", "RequestInfo", "get_policy", "policy_names", "register"]
