# A package, so that these modules (conftest, test_*) do not clash with
# same-named modules of other test directories in one pytest run.
