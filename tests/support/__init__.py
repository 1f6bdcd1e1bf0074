"""What tests share besides fixtures, one module per room of tests: constants, plain helpers
and type names. Fixtures stay in the conftest.py files, where pytest finds them; tests import
helpers from here, never from one another or from a conftest.

Servers and redis-servers of a test's own come from `bench.harness`, as for the benchmarks.
"""
