#!/bin/sh
# The CI step of README.md ("Layouts in CI"): the message layouts of
# schemas/ may evolve compatibly (a new message, a new enum member) but
# never break what peers built from layouts/ read. Exit status: check's,
# 0 when nothing breaks, 4 on a breaking change, 1 on an error.
set -eu
tachyon-gen check --golden layouts --allow-compatible schemas/*.tsch
