# userfault - build, test and install.
#   make                 library, preload library, CLI          (build/)
#   make demo            build, then run the demo on the default back-end
#   make check           build, then run the test suite on both back-ends
#   make SAN=asan check  the same under ASan+UBSan              (build-asan/)
#   make SAN=tsan check  the same under TSan                    (build-tsan/)
#   make analyze         clang-tidy, cppcheck, valgrind: no finding allowed (tools/analyze.sh)
#   make check-arch      layers, raw calls and exports of src/ (tools/check-arch.sh)
#                        and the code of the signal handlers (tools/check-signal.sh)
#   make install PREFIX=/usr/local DESTDIR=
#   make uninstall PREFIX=/usr/local DESTDIR=    (the same variables as install)
#   make deb             the Debian packages of debian/, into $(B)/deb/
#   make check-deb       build, lint, install and use them in a clean root (tools/check-deb.sh)
VERSION  := 0.1.0
SOVER    := 0
CC       ?= cc
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
PKGDIR   ?= $(LIBDIR)/pkgconfig

ifeq ($(SAN),asan)
B        ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SAN),tsan)
B        ?= build-tsan
SANFLAGS := -fsanitize=thread
# A fork child of a threaded program may get a thread of the emulation (the
# watcher that serves a uffd made there, or the new uffd of a FORK event):
# TSan stops such a child unless told to let it go on.
export TSAN_OPTIONS := die_after_fork=0 $(TSAN_OPTIONS)
else
B        ?= build
SANFLAGS :=
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS   ?= -O2 -g
ALLCFLAGS = -std=gnu11 $(WARN) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Iinclude -Isrc -fPIC -pthread
LDLIBS   := -pthread

LIB_SRC  := $(filter-out src/interpose/dropin.c,$(wildcard src/base/*.c src/emu/*.c src/api/*.c src/interpose/*.c))
LIB_OBJ  := $(patsubst src/%.c,$(B)/obj/%.o,$(LIB_SRC))
PRE_SRC  := src/interpose/dropin.c
PRE_OBJ  := $(patsubst src/%.c,$(B)/obj/%.o,$(PRE_SRC))
TOOL_SRC := $(wildcard tools/*.c) $(wildcard bench/*.c)
TEST_SRC := $(wildcard tests/*.c)
TESTS    := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
HELP_SRC := $(wildcard tests/helpers/*.c)
HELPERS  := $(patsubst tests/helpers/%.c,$(B)/tests/helpers/%,$(HELP_SRC))
EX_SRC   := $(wildcard examples/*.c)
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(EX_SRC))
HDRS     := $(wildcard include/*.h include/userfault/*.h src/*.h src/*/*.h src/base/arch/*.h tests/*.h)

SONAME   := libuserfault.so.$(SOVER)
SHLIB    := $(B)/libuserfault.so.$(VERSION)
STLIB    := $(B)/libuserfault.a
PRELOAD  := $(B)/libuserfault-preload.so
CLI      := $(B)/userfault

all: programs $(TESTS) $(HELPERS) $(EXAMPLES)

# What install installs: the libraries and the CLI, without the tests and
# examples (debian/rules builds only these).
programs: $(SHLIB) $(STLIB) $(PRELOAD) $(CLI)

# The library's objects: hidden visibility, so that only what
# include/userfault.h declares and the interposers (UF_EXPORT) are exported
# (src/exports.txt, checked by tools/check-arch.sh).
$(B)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -fvisibility=hidden -c $< -o $@

$(SHLIB): $(LIB_OBJ)
	$(CC) $(ALLCFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf libuserfault.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libuserfault.so

# The static library is one relocatable object whose internal symbols are
# made local: a program linked with it sees the same names as with the
# shared library, and gets every part of it (the interposers included, but
# pthread_create: a static program keeps the C library's).
$(STLIB): $(LIB_OBJ)
	$(CC) -r -nostdlib -o $(B)/userfault.o $(filter-out %/interpose/threads.o,$^)
	objcopy --localize-hidden $(B)/userfault.o
	rm -f $@; ar rcs $@ $(B)/userfault.o

# The drop-in carries its own copy of the library so that it needs nothing
# on the library path.
$(PRELOAD): $(PRE_OBJ) $(LIB_OBJ)
	$(CC) $(ALLCFLAGS) -shared -Wl,-z,defs $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Programs link the static library: build/userfault and the tests run from
# the build tree without an install.
$(CLI): $(TOOL_SRC) $(wildcard tools/*.h bench/*.h) $(STLIB) $(HDRS)
	$(CC) $(ALLCFLAGS) -DUF_PRELOAD_NAME='"libuserfault-preload.so"' $(LDFLAGS) -o $@ $(TOOL_SRC) $(STLIB) $(LDLIBS) -lm

$(B)/tests/%: tests/%.c $(STLIB) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests -o $@ $< $(STLIB) $(LDLIBS)

# A fully static program (not under the sanitizers, which need a dynamic
# link: the test then skips).
$(B)/tests/static-link: tests/static-link.c $(STLIB) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests $(if $(SANFLAGS),,-static -DUF_TEST_STATIC) -o $@ $< $(STLIB) $(LDLIBS)

# Test helpers (wrappers such as the seccomp sandbox) are not tests.  The
# raw-* ones use the kernel ABI alone, like an unmodified program.
$(B)/tests/helpers/raw-%: tests/helpers/raw-%.c include/userfault/uapi.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Iinclude -pthread -o $@ $<

$(B)/tests/helpers/%: tests/helpers/%.c $(STLIB) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests -o $@ $< $(STLIB) $(LDLIBS)

# Examples are written against the raw kernel ABI only: no userfault header,
# no library.  They run on the emulation through the drop-in.
$(B)/examples/%: examples/%.c include/userfault/uapi.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Iinclude -pthread -o $@ $<

demo: all
	./$(CLI) demo 8

check: all
	tests/run-tests.sh $(B)

test: check

# Static analysis (clang-tidy with .clang-tidy, cppcheck) and the emulated
# back-end's tests under valgrind; fails on any finding (tools/analyze.sh).
analyze: all
	tools/analyze.sh $(B)

# The architecture rules of src/ (HACKING.md): calls and includes only go
# down the layers of src/LAYERS, no interposed name is called from inside,
# and the exports are those of src/exports.txt.  Then what the signal
# handlers reach: async-signal-safe calls only, and under TSan no entry into
# its runtime (not checked under ASan, whose checks call its runtime).
check-arch: all
	tools/check-arch.sh $(B) --diagram
	$(if $(filter asan,$(SAN)),,tools/check-signal.sh $(B))

# The compiler flags, for the compilation database that tools/analyze.sh writes.
print-cflags:
	@echo '$(ALLCFLAGS)'

# Every man page renders without a warning, in the tree (man -l) and once
# installed (the links between pages as .so requests), and uninstall removes
# what install put there.
check-man: all
	tools/check-man.sh $(B)

.PHONY: analyze check-arch check-man print-cflags

# The Debian packages (debian/): dpkg-buildpackage in a copy of the tree
# (its tracked and untracked, not ignored, files), the .debs into $(B)/deb/.
# check-deb builds them from HEAD, runs lintian, installs them into a clean
# debootstrap root and uses them there (as root, with the network).
deb:
	rm -rf $(B)/deb && mkdir -p $(B)/deb/src
	git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - | tar -x -C $(B)/deb/src
	cd $(B)/deb/src && dpkg-buildpackage -us -uc -b
	rm -rf $(B)/deb/src
	@ls $(B)/deb/*.deb

check-deb:
	tools/check-deb.sh

.PHONY: deb check-deb

bench: all
	./$(CLI) bench

# BENCHMARKS.md: one full run, a run of the round trips without spinning,
# then the analysis (bench/NOTES.md).
benchmarks: all
	@mkdir -p docs
	./$(CLI) bench --markdown BENCHMARKS.md --svg docs/bench-latency.svg --json docs/bench-results.json
	USERFAULT_SPIN_US=0 ./$(CLI) bench --only roundtrip --markdown BENCHMARKS.md --append
	USERFAULT_SPIN_US=0 ./$(CLI) bench --only threads --markdown BENCHMARKS.md --append
	taskset -c 0 ./$(CLI) bench --only resolve --markdown BENCHMARKS.md --append
	cat bench/NOTES.md >> BENCHMARKS.md

install: programs
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)/userfault $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGDIR) $(DESTDIR)$(MANDIR)/man3
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libuserfault.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libuserfault.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(PRELOAD) $(DESTDIR)$(LIBDIR)/
	install -m 644 include/userfault.h $(DESTDIR)$(INCDIR)/
	install -m 644 include/userfault/uapi.h include/userfault/pagemap.h $(DESTDIR)$(INCDIR)/userfault/
	$(CC) $(ALLCFLAGS) -DUF_PRELOAD_NAME='"$(LIBDIR)/libuserfault-preload.so"' $(LDFLAGS) -o $(B)/userfault.installed $(TOOL_SRC) $(STLIB) $(LDLIBS) -lm
	install -m 755 $(B)/userfault.installed $(DESTDIR)$(BINDIR)/userfault
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' userfault.pc.in > $(DESTDIR)$(PKGDIR)/userfault.pc
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	for m in man/*.1 man/*.3 man/*.7; do \
		d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
		if [ -L $$m ]; then \
			printf '.so man%s/%s\n' "$${m##*.}" "$$(readlink $$m)" > $$d/$${m##*/} && chmod 644 $$d/$${m##*/}; \
		else install -m 644 $$m $$d/; fi; \
	done

# Removes exactly what install put there (same PREFIX, LIBDIR, ... and DESTDIR).
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libuserfault.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libuserfault.so $(DESTDIR)$(LIBDIR)/libuserfault.a \
	      $(DESTDIR)$(LIBDIR)/libuserfault-preload.so $(DESTDIR)$(INCDIR)/userfault.h \
	      $(DESTDIR)$(INCDIR)/userfault/uapi.h $(DESTDIR)$(INCDIR)/userfault/pagemap.h $(DESTDIR)$(BINDIR)/userfault \
	      $(DESTDIR)$(PKGDIR)/userfault.pc
	-rmdir $(DESTDIR)$(INCDIR)/userfault
	for m in man/*.1 man/*.3 man/*.7; do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done

clean:
	rm -rf build build-asan build-tsan build-clang

.PHONY: all programs demo check test bench benchmarks install uninstall clean
.SECONDARY:

# Differential fuzzing of the two back-ends (fuzz/README.md).
#   make fuzz         libFuzzer target, clang + ASan/UBSan   ($(B)/fuzz/uffd-diff)
#   make fuzz-check   replay fuzz/corpus with $(CC), then a short libFuzzer pass
FUZZ_CC   ?= clang
FUZZ_FLAGS = -std=gnu11 $(WARN) -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -pthread -fno-omit-frame-pointer \
	     -fsanitize=address,undefined -fno-sanitize-recover=undefined
$(B)/fuzz/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
# (Without the interposed pthread_create, as a static program: libFuzzer's
# own threads then keep their state where LeakSanitizer finds it.)
$(B)/fuzz/uffd-diff: fuzz/uffd-diff.c $(patsubst src/%.c,$(B)/fuzz/obj/%.o,$(filter-out src/interpose/threads.c,$(LIB_SRC))) $(HDRS)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(filter %.o,$^)
$(B)/fuzz/uffd-diff-replay: fuzz/uffd-diff.c $(STLIB) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -DUFFD_DIFF_REPLAY -o $@ $< $(STLIB) $(LDLIBS)
fuzz: $(B)/fuzz/uffd-diff
fuzz-check: $(B)/fuzz/uffd-diff-replay
	fuzz/check.sh $(B) "$(FUZZ_CC)"
.PHONY: fuzz fuzz-check
