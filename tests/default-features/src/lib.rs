//! Empty: the tests in `tests/` use partlog as an application does, with default features.
