# seed — the two commands a newcomer needs are `make demo` and `make check`.
# Everything they need is installed from Debian by scripts/deps.sh.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
PREFIX     ?= /usr/local

.PHONY: all deps build build-asan demo check check-vm fuzz bench format clean install

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD) >/dev/null

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

build-asan: deps $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD) >/dev/null

demo: build
	@./scripts/demo.sh $(BUILD)

check: deps
	@./scripts/check.sh

# The cgroup v2 smoke suite (tests/vm/) in a QEMU guest; scripts/vm/ fetches what it needs.
check-vm: build
	@./scripts/vm/check-vm.sh $(BUILD)

fuzz: deps
	@./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	@./bench/run-all.sh $(BUILD)

# seed, seedd, seed-init and seed-shoot into $(PREFIX)/bin, the bash completion into
# bash-completion's directory and the systemd units (dist/) into systemd's unit
# directory under $(PREFIX) (/usr/local/lib/systemd/system); DESTDIR stages it elsewhere.
install: build
	@meson configure $(BUILD) -Dprefix=$(PREFIX) >/dev/null
	@ninja -C $(BUILD) >/dev/null
	@meson install -C $(BUILD) --no-rebuild --quiet $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) .pytest_cache
