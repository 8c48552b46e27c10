"""Course tooling: exercise checkers and the student edition of the book.

* :mod:`dfd_lite.teaching.checks` - ``check_*`` functions that run a
  student's function on small cases and print what failed and why;
* :mod:`dfd_lite.teaching.course` - ``python -m dfd_lite.teaching.course
  student-edition OUT`` writes the book without its solutions.

Neither is imported by ``import dfd_lite``: the library does not depend on
its teaching tools.
"""
