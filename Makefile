# One-line wrappers; the work is in scripts/ and the Python packages.
.PHONY: start stop status test lint fmt train bootstrap env loadtest bench engine engine-down k8s

start: bootstrap  ## the whole stack natively: gateway, replicas, Redis, UI (Ctrl-C stops it)
	.venv/bin/python -m stack up
stop:  ## stop the stack that `make start` started (by the PIDs in .run/stack.json)
	.venv/bin/python -m stack down
status:
	.venv/bin/python -m stack status
test:  ## lint and every test; installs what is missing first
	scripts/test.sh
lint:  ## ruff, then mypy strict on backend/mlstack and stack (pyproject.toml says what and how)
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
fmt:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
env:  ## write .env with generated secrets for docker compose (never overwrites)
	.venv/bin/python -m stack env
train: bootstrap  ## train and publish a demo model: make train DEMO=churn
	.venv/bin/python -m mlstack.cli train --demo $(or $(DEMO),churn)
engine: bootstrap  ## no working Docker here: podman behind a Docker socket, Compose, stand-in base images
	scripts/engine.sh up
engine-down:  ## stop what `make engine` started (by the PIDs in .run/engine/)
	scripts/engine.sh down
bootstrap:
	scripts/bootstrap.sh
loadtest:  ## Locust, headless, against the running stack: make loadtest [ARGS="--users 50 --run-time 2m OneRow"]
	.venv/bin/locust --config loadtests/locust.conf $(ARGS)
bench: bootstrap  ## the benchmark and scaling report, on stacks it starts itself: make bench [QUICK=1] [PEERS=1] [OVERLOAD=1]
	.venv/bin/python -m bench $(if $(QUICK),--quick) $(if $(PEERS),--peers) $(if $(OVERLOAD),--overload-only) $(ARGS)
k8s:  ## Kubernetes manifests: make k8s [OVERLAY=dev|prod] [OUT=file] [ENV_FILE=.env] [REGISTRY=r TAG=t]
	@scripts/bootstrap.sh >&2
	@.venv/bin/python -m stack.kubernetes --overlay $(or $(OVERLAY),dev) --env-file $(or $(ENV_FILE),.env) \
		$(if $(OUT),--output $(OUT)) $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(TAG),--tag $(TAG))
