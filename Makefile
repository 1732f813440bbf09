# kubellm: the few commands a newcomer needs. Each target is one script; `make help` lists them.
# Everything runs on this machine: scripts/setup.sh installs what is missing (Debian packages,
# .venv, the Go-built Kubernetes/etcd/kwok/helm binaries, with progress and elapsed times).
.DEFAULT_GOAL := help
.PHONY: help demo demo-real demo-down test

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: ## set up, start the sandbox, run the operator offline on real model metadata, apply examples/, show the decisions
	./scripts/demo.sh

demo-real: ## the demo with a real worker node: a tiny model downloaded and served for real, ending in a chat completion (root)
	./scripts/demo-real.sh

demo-down: ## stop the sandbox the demo left running
	.venv/bin/kubellm sandbox down

test: ## every check and test, exactly what CI (.ci/run) runs: scripts/test.sh
	./scripts/test.sh
