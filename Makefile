# The usual entry points; the README's test command is ./test/run.sh.
VERSION ?= 0.1.0
DIST    ?= dist

.PHONY: build test test-packaging deb plugin-pkg clean
build:
	go build -o bin/ ./cmd/...

test:
	./test/run.sh

# The packaging checks alone: the .deb and the EXAoperation package built,
# installed, upgraded and purged in a throwaway root (as root; the machine is
# not changed), the unit verified, the monitoring files checked by promtool.
test-packaging:
	go test -count=1 ./test/packaging

deb:
	./packaging/build-deb.sh $(VERSION) $(DIST)

plugin-pkg:
	./packaging/build-plugin-pkg.sh $(VERSION) $(DIST)

clean:
	rm -rf bin $(DIST)
