# The usual entry points; the README's test command is ./test/run.sh.
VERSION ?= 0.1.0
DIST    ?= dist

.PHONY: build test deb plugin-pkg clean
build:
	go build -o bin/ ./cmd/...

test:
	./test/run.sh

deb:
	./packaging/build-deb.sh $(VERSION) $(DIST)

plugin-pkg:
	./packaging/build-plugin-pkg.sh $(VERSION) $(DIST)

clean:
	rm -rf bin $(DIST)
