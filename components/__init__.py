"""One subpackage per pipeline step: plain, unit-tested functions plus a thin KFP component."""
