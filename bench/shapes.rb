# frozen_string_literal: true

# MessagePack.pack / MessagePack.unpack throughput of msgpack-rs against the C msgpack
# gem, on eight payload shapes (see bench/support/payloads.rb):
#
#   map1_str150        { "message" => 150-byte string }
#   log_record         one 11-field web-log record (strings + integers)
#   records_1000       an array of 1,000 such records
#   ints_10000         10,000 integers over every width (fixint, uint8..64, int8..64)
#   floats_10000       10,000 floats
#   nested_200         200 nested records (arrays, maps, floats, booleans, nil)
#   bin_1mib           { "data" => 1 MiB binary string }
#   utf8_strings_2000  2,000 UTF-8 strings, 0..~1,200 bytes, mostly non-ASCII
#
#   ruby bench/shapes.rb                     alternate C-gem / msgpack-rs children, print the table
#   BENCH_ROUNDS=5 BENCH_TIME=2 ruby bench/shapes.rb
#   BENCH_FILTER=unpack ruby bench/shapes.rb
#   ruby -I lib bench/shapes.rb --dump records_1000 | xxd | head
#
# Every child checks unpack(pack(x)) == x (strictly) for each shape; the parent checks
# that both implementations pack identical bytes and unpack identical objects.
# Harness, environment variables and exit status: bench/support/ab.rb.

require_relative "support/ab"
require_relative "support/payloads"

AB.main(__FILE__, title: "shapes: MessagePack.pack / MessagePack.unpack, ops/s") do |s|
  packed = {}
  payloads = Payloads.shapes
  payloads.each { |name, obj| packed[name] = s.check(name, obj) }

  s.section("pack") do
    payloads.each do |name, obj|
      s.bench(name, "MessagePack.pack(obj)", obj: obj)
    end
  end

  s.section("unpack") do
    payloads.each_key do |name|
      next unless packed[name]

      s.bench(name, "MessagePack.unpack(data)", data: packed[name])
    end
  end
end
