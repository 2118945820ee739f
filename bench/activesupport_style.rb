# frozen_string_literal: true

# A factory registered the way ActiveSupport::MessagePack (Rails 7.1+, the :message_pack
# cache and message serializer) registers its types: `recursive: true` ext types whose
# packers and unpackers are Method objects taking (object, packer) / (unpacker) and
# calling packer.write / unpacker.read several times, plus Symbol with
# optimized_symbols_parsing. Both gems run this same Ruby code; see bench/support/ab.rb.
#
#   ruby bench/activesupport_style.rb           alternate C-gem / msgpack-rs children
#   BENCH_FILTER=dump ruby bench/activesupport_style.rb
#
# Columns GC/1k and GCms/1k give GC runs and milliseconds of GC per 1,000 operations, for
# each implementation.

require_relative "support/ab"

AB.main(__FILE__, title: "ActiveSupport-style factory: Factory#dump / #load, ops/s", gc: true) do |s|
  if Gem::Version.new(MessagePack::VERSION) < Gem::Version.new("1.7.0")
    s.skip("all cases", "msgpack #{MessagePack::VERSION} has no recursive ext types (1.7+)")
    next
  end
  require "date"
  begin
    require "bigdecimal"
  rescue LoadError
    nil # a bundled gem on newer Rubies; the cases without it still run
  end

  indifferent = Class.new(Hash)
  ext = Module.new do
    module_function

    define_method(:write_time) do |time, packer|
      packer.write(time.tv_sec)
      packer.write(time.tv_nsec)
      packer.write(time.utc_offset)
    end

    def read_time(unpacker)
      sec = unpacker.read
      nsec = unpacker.read
      offset = unpacker.read
      Time.at(sec, nsec, :nanosecond, in: offset)
    end

    def write_date(date, packer)
      packer.write(date.jd)
    end

    def read_date(unpacker)
      Date.jd(unpacker.read)
    end

    def write_rational(rational, packer)
      packer.write(rational.numerator)
      packer.write(rational.denominator)
    end

    def read_rational(unpacker)
      Rational(unpacker.read, unpacker.read)
    end

    define_method(:write_indifferent) do |hash, packer|
      packer.write(Hash[hash])
    end

    define_method(:read_indifferent) do |unpacker|
      indifferent[unpacker.read]
    end

    def write_bigdecimal(value)
      value._dump
    end

    def read_bigdecimal(payload)
      BigDecimal._load(payload)
    end
  end

  factory = MessagePack::Factory.new
  factory.register_type(0, Symbol, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext,
                                   optimized_symbols_parsing: true)
  factory.register_type(3, Rational, packer: ext.method(:write_rational), unpacker: ext.method(:read_rational),
                                     recursive: true)
  factory.register_type(6, Date, packer: ext.method(:write_date), unpacker: ext.method(:read_date), recursive: true)
  factory.register_type(7, Time, packer: ext.method(:write_time), unpacker: ext.method(:read_time), recursive: true)
  factory.register_type(17, indifferent, packer: ext.method(:write_indifferent),
                                         unpacker: ext.method(:read_indifferent), recursive: true)
  if defined?(BigDecimal)
    factory.register_type(2, BigDecimal, packer: ext.method(:write_bigdecimal), unpacker: ext.method(:read_bigdecimal))
  end

  base = Time.at(1_700_000_000, 123_456_789, :nanosecond, in: "+09:00")
  times = Array.new(1000) { |i| base + i * 61.25 }
  dates = Array.new(1000) { |i| Date.new(2020, 1, 1) + i }
  symbols = (0...100).to_h { |i| [:"key_#{i}", :"value_#{i % 7}"] }
  hwia = indifferent[(0...100).to_h { |i| ["field_#{i}", i.even? ? "text #{i}" * 3 : i * 1000] }]
  entry = {
    value: {
      id: 4217, title: "Ractor-safe MessagePack", tags: %i[ruby rust msgpack], published_on: Date.new(2026, 11, 30),
      updated_at: base, score: Rational(17, 4), views: 1_234_567, author: { name: "Ada", email: "ada@example.com" },
      price: defined?(BigDecimal) ? BigDecimal("19.99") : "19.99",
    },
    version: nil, expires_in: 3600.0,
  }
  shapes = {
    "times_1000" => times, "dates_1000" => dates, "symbols_hash_100" => symbols,
    "indifferent_hash_100" => hwia, "cache_entry" => entry,
  }

  packed = {}
  shapes.each do |name, obj|
    packed[name] = s.check(name, obj, pack: ->(o) { factory.dump(o) }, unpack: ->(b) { factory.load(b) })
  end

  s.section("dump") do
    shapes.each { |name, obj| s.bench(name, "factory.dump(obj)", factory: factory, obj: obj) }
  end
  s.section("load") do
    shapes.each_key do |name|
      next unless packed[name]

      s.bench(name, "factory.load(data)", factory: factory, data: packed[name])
    end
  end
end
