# cairn - the two commands and a few helpers.
#
#   make run [ARGS="--data ./data ..."]  install deps, build build/, start `cairn serve`
#   make test                            install test deps, build build/ and build-asan/,
#                                        run ctest in both, a short fuzz run; ends with
#                                        one line "N passed, N failed"
#   make build | asan | lint | clean
#
# -Werror is always on (top-level CMakeLists.txt). JOBS defaults to the core count.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_TYPE ?= RelWithDebInfo
ARGS ?=

.PHONY: run test build asan lint clean deps test-deps

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --test

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build build -j$(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=ON
	cmake --build build-asan -j$(JOBS)

# Command 1 builds only the daemon: a unit test that does not compile must not
# keep an operator from starting the node (make test still fails on it).
run: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build build --target cairn -j$(JOBS)
	exec build/node/cairn serve $(ARGS)

test: test-deps
	JOBS=$(JOBS) BUILD_TYPE=$(BUILD_TYPE) scripts/run-tests.sh

lint:
	@files=$$(find core meta ring chunkstore objstore blockstore registry node bench tests \
		-name '*.[ch]' 2>/dev/null); \
	if [ -z "$$files" ]; then echo "lint: no C files"; exit 0; fi; \
	clang-format --dry-run --Werror $$files && echo "lint: clean"

clean:
	rm -rf build build-asan
