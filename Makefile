# runtimed — see README.md. Targets that install or start things need root.

GO        ?= go
VERSION   ?= $(shell packaging/scripts/version.sh)
LDFLAGS   := -X github.com/runtimed/runtimed/internal/version.Version=$(VERSION)
CONFIG    ?= packaging/runtimed.toml
# containerd's address as the config says it (make run, make images).
CONTAINERD = $(shell sed -n 's/^containerd *= *"\(.*\)"/\1/p' $(CONFIG))
IMAGE_CACHE ?= /var/cache/runtimed-build/images

.PHONY: all help build deps test-deps images images-cache run test test-unit fuzz test-integration test-security test-install test-vm package bench lint clean

all: build

## help: this list
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

# LANGUAGES=python,c limits make images and images-cache to those languages.
LANGUAGES ?=
IMAGE_ARGS = $(subst $(comma), ,$(LANGUAGES))
comma := ,
# RUN=Regex runs only the matching tests of test-integration and test-security.
RUN ?=
RUN_ARGS = $(if $(RUN),-run '$(RUN)')

## build: runtimed, runtimectl and runtimed-init (static: it runs inside the sandboxes) in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/runtimed ./cmd/runtimectl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/ ./cmd/runtimed-init

## deps: containerd, debootstrap and the pinned gVisor, where missing
deps:
	packaging/scripts/deps.sh

test-deps:
	packaging/scripts/deps.sh --test

## images: each language's image (or LANGUAGES=python,c), built unless cached, imported unless current
images: deps build
	packaging/scripts/with-containerd.sh $(CONTAINERD) \
		bin/runtimed --config $(CONFIG) image build --recipes packaging/images --cache $(IMAGE_CACHE) $(IMAGE_ARGS)

# make run builds these images before it serves; the daemon builds the
# others while it serves (with LANGUAGES, make run builds those, and only those).
RUN_FIRST ?= python,javascript

## run: deps, build, the python and javascript images, then runtimed in the foreground
##   (Ctrl-C stops it), which builds the other images while it serves
##   (LANGUAGES=python,c: those images only)
run:
	packaging/scripts/deps.sh --no-gvisor
	packaging/scripts/with-containerd.sh $(CONTAINERD) packaging/scripts/run.sh \
		"$(CONFIG)" "$(IMAGE_CACHE)" "$(or $(LANGUAGES),$(RUN_FIRST))" $(if $(LANGUAGES),,--build-missing)

## test: lint, unit tests, fuzzing, the integration and security suites against a private containerd + runsc, then the package's install test
test: lint test-unit fuzz test-integration test-security test-install

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./tests/...
	$(GO) vet -tags 'integration install' ./tests/install/
	cd tests/bench && $(GO) vet -tags integration ./...
	$(GO) vet -tags vm ./tests/vm/
	packaging/scripts/golangci-lint.sh run ./...

test-unit:
	$(GO) test -race -count=1 ./...

## fuzz: each fuzz target for a few seconds, from its committed seed corpus.
##   A count, not a duration: Go 1.26's fuzzing coordinator can fail a target
##   with "context deadline exceeded" when a duration ends (golang/go#75804).
FUZZTIME ?= 30000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRun$$' -fuzztime $(FUZZTIME) ./internal/server/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePiston$$' -fuzztime $(FUZZTIME) ./internal/server/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateFileName$$' -fuzztime $(FUZZTIME) ./internal/server/
	$(GO) test -run '^$$' -fuzz '^FuzzParseClass$$' -fuzztime $(FUZZTIME) ./internal/language/

## images-cache: the images built into the cache (for the suites, which import them into their own containerd)
images-cache: test-deps build
	bin/runtimed image build --no-import --recipes packaging/images --cache $(IMAGE_CACHE) $(IMAGE_ARGS)

## test-integration, test-security: need root; RUN=Regex runs only the matching tests
test-integration: images-cache
	RUNTIMED_IMAGE_CACHE=$(IMAGE_CACHE) $(GO) test -count=1 -tags integration -timeout 30m -v $(RUN_ARGS) ./tests/integration/...

test-security: images-cache
	RUNTIMED_IMAGE_CACHE=$(IMAGE_CACHE) $(GO) test -count=1 -tags integration -timeout 30m -v $(RUN_ARGS) ./tests/security/...

## package: dist/runtimed_VERSION_ARCH.deb (nfpm, installed pinned), with runsc
package: build
	packaging/scripts/package.sh dist

## test-install: installs the package here, uses it, removes and purges it; then
##   puts back the runsc make deps had installed (the package's removal took it)
test-install: package images-cache
	RUNTIMED_IMAGE_CACHE=$(IMAGE_CACHE) RUNTIMED_DEB=$(CURDIR)/$$(ls -t dist/runtimed_*.deb | head -1) \
		$(GO) test -count=1 -tags 'integration install' -timeout 20m -v ./tests/install/; \
		status=$$?; packaging/scripts/deps.sh >/dev/null; exit $$status

## test-vm: the second host kind, in a QEMU guest (software emulation): Debian 13,
##   cgroup v2 only, systemd as PID 1, containerd 1.7 then 2.x. Installs the package
##   there, starts it through its units and checks it (docs/operations.md, Host kinds).
##   The guest image is built once per recipe into $(VM_CACHE).
VM_CACHE ?= /var/cache/runtimed-build/vm
test-vm: package images-cache
	packaging/scripts/deps.sh --vm
	RUNTIMED_IMAGE_CACHE=$(IMAGE_CACHE) RUNTIMED_VM_CACHE=$(VM_CACHE) RUNTIMED_DEB=$(CURDIR)/$$(ls -t dist/runtimed_*.deb | head -1) \
		$(GO) test -count=1 -tags vm -timeout 55m -v ./tests/vm/

## bench: hello worlds four ways side by side (chroot floor, ctr run --rm, runtimed cold, runtimed warm pool) at concurrency 1-8; table, JSON, CSV and PNG in bench-results/
BENCH_REQUESTS ?= 24
BENCH_SUSTAIN_S ?= 30
bench: images-cache
	cd tests/bench && RUNTIMED_IMAGE_CACHE=$(abspath $(IMAGE_CACHE)) BENCH_REQUESTS=$(BENCH_REQUESTS) BENCH_SUSTAIN_S=$(BENCH_SUSTAIN_S) $(GO) test -count=1 -tags integration -run '^$$' -bench . -benchtime 1x -timeout 60m -v .

clean:
	rm -rf bin dist
