"""Tests of the tachyon ring client (a package, so its helper modules never
clash with another test tree's ``conftest``)."""
