"""Tests against a real Kubernetes 1.20.2 control plane (hack/control-plane); see conftest.py."""
