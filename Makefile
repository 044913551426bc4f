# Shortcuts; the scripts do the work (and install what they need).
.PHONY: app test bundle dist clean

app:      ## launch the app with the embedded Redis and the simulated lab
	scripts/run-app.sh

test:     ## ruff + the whole test suite
	scripts/test.sh

bundle:   ## PyInstaller bundle in dist/sensorium, checked with `sensorium selftest`
	scripts/dist.sh bundle

dist:     ## bundle + .deb + .tar.gz (Windows: installer/windows/sensorium.iss)
	scripts/dist.sh all

clean:
	rm -rf build dist
