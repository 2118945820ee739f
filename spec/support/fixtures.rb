# frozen_string_literal: true

# Test data vendored in spec/fixtures/ (see the README.md beside each). A missing fixture
# fails the examples that read it; it never turns them into pending/skipped ones.
module Fixtures
  DIR = File.expand_path("../fixtures", __dir__)

  # kawanet/msgpack-test-suite (MIT), also read by core/tests/vectors.rs.
  MSGPACK_TEST_SUITE_JSON = File.join(DIR, "msgpack-test-suite", "msgpack-test-suite.json")
end
