# frozen_string_literal: true

# A short tour of the msgpack API with web-server log records, as script/demo runs it:
#
#   ruby -I lib examples/demo.rb                   # msgpack-rs (this repo's lib/)
#   DEMO_SKIP_RACTOR=1 ruby examples/demo.rb       # the C msgpack gem, which cannot run in a Ractor
#
# Only the standard msgpack API is used (MessagePack.pack/unpack, Unpacker#feed_each).

require "msgpack"
require "json"

Warning[:experimental] = false # Ractor's "experimental" warning on Ruby 3.x

module Demo
  module_function

  # One access-log line as an app would ship it to a log collector: 11 fields.
  def log_record(i)
    {
      "ts" => 1_714_825_696_789 + (i * 137),
      "host" => "web-#{(i % 3) + 1}.example.internal",
      "method" => i.even? ? "GET" : "POST",
      "path" => "/api/v2/orders/#{48_213 + i}/items",
      "status" => [200, 200, 201, 304, 404][i % 5],
      "bytes" => 1_834 + (i * 71),
      "duration_ms" => 12.75 + i,
      "remote_ip" => "203.0.113.#{10 + i}",
      "user_agent" => "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
      "request_id" => format("%08x-4b1d-4c3e-9f0a-%012x", 0x5eed0000 + i, 0xc0ffee + i),
      "tags" => ["edge", i.even? ? "cache-miss" : "cache-hit"],
    }
  end

  def hexdump(bytes, limit: 64, indent: "     ")
    shown = bytes.byteslice(0, limit)
    lines = shown.bytes.each_slice(16).with_index.map do |row, n|
      hex = row.map { |b| format("%02x", b) }.join(" ")
      text = row.map { |b| b.between?(0x20, 0x7e) ? b.chr : "." }.join
      format("%s%04x  %-47s  |%s|", indent, n * 16, hex, text)
    end
    lines << "#{indent}... (#{bytes.bytesize - limit} more bytes)" if bytes.bytesize > limit
    lines.join("\n")
  end

  def chunks(bytes, size)
    (0...bytes.bytesize).step(size).map { |off| bytes.byteslice(off, size) }
  end

  # Stream a byte string through one Unpacker in small chunks, as if it came off a
  # socket, and return the objects it yielded plus the number of feeds.
  def stream(bytes, chunk_size)
    unpacker = MessagePack::Unpacker.new
    objects = []
    feeds = 0
    chunks(bytes, chunk_size).each do |chunk|
      feeds += 1
      unpacker.feed_each(chunk) { |obj| objects << obj }
    end
    [objects, feeds]
  end

  def implementation
    rb = $LOADED_FEATURES.find { |f| f.end_with?("/msgpack.rb") }
    ext = $LOADED_FEATURES.find { |f| f =~ %r{/msgpack/msgpack(_rs)?\.(so|bundle)\z} }
    name = $LOADED_FEATURES.any? { |f| f.include?("msgpack_rs") } ? "msgpack-rs" : "msgpack (C)"
    "#{name}, MessagePack::VERSION #{MessagePack::VERSION}\n   lib: #{rb}\n   ext: #{ext}"
  end
end

puts "== msgpack demo"
puts "   #{Demo.implementation}"

# 1. One record.
record = Demo.log_record(0)
packed = MessagePack.pack(record)
json = JSON.generate(record)
puts
puts "== 1. pack one log record (#{record.size} fields)"
puts format("   MessagePack %d bytes, JSON %d bytes (%.0f%% of JSON)",
            packed.bytesize, json.bytesize, 100.0 * packed.bytesize / json.bytesize)
puts "   encoding: #{packed.encoding}"
puts Demo.hexdump(packed)

# 2. Back again.
unpacked = MessagePack.unpack(packed)
raise "round trip changed the record: #{unpacked.inspect}" unless unpacked == record

puts
puts "== 2. unpack"
puts "   equal to the original: #{unpacked == record}"
puts "   #{unpacked["method"]} #{unpacked["path"]} -> #{unpacked["status"]} " \
     "(#{unpacked["bytes"]} bytes, #{unpacked["duration_ms"]} ms)"

# 3. A stream of records, fed in 7-byte pieces.
records = (0...5).map { |i| Demo.log_record(i) }
stream_bytes = records.map { |r| MessagePack.pack(r) }.join
objects, feeds = Demo.stream(stream_bytes, 7)
raise "stream gave back #{objects.size} objects, expected #{records.size}" unless objects == records

puts
puts "== 3. stream #{records.size} records (#{stream_bytes.bytesize} bytes) through an Unpacker in 7-byte chunks"
puts "   #{feeds} feeds -> #{objects.size} records, all equal: #{objects == records}"
objects.each { |r| puts "   #{r["request_id"]}  #{r["method"].ljust(4)} #{r["status"]}  #{r["path"]}" }

# 4. The same work inside a Ractor that is not the main one.
puts
if ENV["DEMO_SKIP_RACTOR"] == "1"
  puts "== 4. Ractor: skipped (DEMO_SKIP_RACTOR=1)"
else
  puts "== 4. inside a non-main Ractor: stream-unpack, summarise, pack the summary"
  worker = Ractor.new(stream_bytes) do |bytes|
    raise "running on the main Ractor" if Ractor.current == Ractor.main

    # Block-local names: a Ractor's block must not touch the main script's variables.
    got, n_feeds = Demo.stream(bytes, 5)
    by_status = Hash.new(0)
    got.each { |r| by_status[r["status"]] += r["bytes"] }
    summary = { "records" => got.size, "feeds" => n_feeds, "bytes_by_status" => by_status }
    [MessagePack.pack(summary), MessagePack.pack(got.first) == MessagePack.pack(Demo.log_record(0))]
  end

  begin
    # Ractor#value on Ruby 3.5+ (which removed #take); Ractor#take on 3.1-3.4.
    summary_bytes, same_bytes = worker.respond_to?(:value) ? worker.value : worker.take
  rescue Ractor::RemoteError => e
    warn "   the Ractor failed: #{e.cause.class}: #{e.cause.message}"
    exit 1
  end
  summary = MessagePack.unpack(summary_bytes)
  expected = Hash.new(0)
  records.each { |r| expected[r["status"]] += r["bytes"] }
  raise "Ractor summary #{summary.inspect} is wrong" unless summary["bytes_by_status"] == expected

  puts "   got #{summary_bytes.bytesize} packed bytes back from #{worker.inspect}"
  puts "   summary: #{summary.inspect}"
  puts "   a record packed in the Ractor has the same bytes as in the main Ractor: #{same_bytes}"
end

puts
puts "demo ok"
