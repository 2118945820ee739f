# frozen_string_literal: true

module MessagePack
  # msgpack-rs implements the API of msgpack-ruby 1.8.3 and reports its version.
  VERSION = "1.8.3"
end
