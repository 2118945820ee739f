# frozen_string_literal: true

# The one random object generator of the test suite, script/fuzz and the benchmarks
# (plain Ruby: no RSpec; msgpack is only touched when a :wire value holds an ext value).
#
#   gen = RandomObjects.generator(:wire, rng)   # rng: a Random (shared with the caller)
#   gen = RandomObjects.generator(:ruby, 1234)  # or a seed
#   gen.value                                   # one object (also gen.object)
#   RandomObjects.values(:simple, 10, seed: 7)  # ten of them
#
# Profiles (every one draws from the given Random in a fixed order, so a seed always
# gives the same objects: failures reported with a seed replay exactly):
#
#   :wire    what msgpack itself can carry, as the decoder returns it (random_input_spec,
#            script/fuzz): nil/true/false, integers (interesting edges and up to +-2^40),
#            Floats (+-0.0, +-Infinity, NaN, float32-exact values), UTF-8 Strings (also
#            invalid UTF-8, sometimes 256-400 bytes), binary Strings,
#            MessagePack::ExtensionValue (any type, 0-20 byte payloads), Arrays (up to 40)
#            and Hashes (up to 20 pairs) whose keys are Integers, nil, binary Strings,
#            one-element Arrays, true or short UTF-8 Strings; nesting depth up to 5.
#   :ruby    Ruby objects as a program hands them to MessagePack.pack (differential_spec):
#            the whole 64-bit integer range and its edges, Float edges (Float::MAX/MIN,
#            5e-324, NaN, ...), UTF-8 (many scripts, emoji), US-ASCII and binary Strings of
#            the interesting lengths up to 64 KiB, Symbols (ASCII, UTF-8, binary), Arrays
#            and Hashes (sizes around the fix/16 boundaries) whose keys stay distinct after
#            msgpack normalisation (a Symbol key and the same String key never meet).
#   :soak    the mixed workload of bench/soak.rb: Integers up to 64 bits, Floats,
#            "a"/"é"/binary Strings up to 300 bytes, Symbols, nil/true/false, Arrays,
#            String-keyed and Integer/nil-keyed Hashes. Also #string(max).
#   :simple  small plain shapes (reliability_skip_state_spec): Integers, "s" * n Strings,
#            nil, true/false, 1.5, Arrays and "kN"-keyed Hashes, nesting depth up to 4.
module RandomObjects
  # Integers at the msgpack format boundaries (the :wire profile's favourites).
  INTERESTING_INTS = [
    0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
    2**63 - 1, 2**63, 2**64 - 1, -1, -31, -32, -33, -127, -128, -129, -32_768, -32_769,
    -2**31, -2**31 - 1, -2**63
  ].freeze

  module_function

  def generator(profile, rng = Random.new)
    klass = PROFILES.fetch(profile) do
      raise ArgumentError, "unknown profile #{profile.inspect} (#{PROFILES.keys.join(", ")})"
    end
    klass.new(rng.is_a?(Integer) ? Random.new(rng) : rng)
  end

  def values(profile, count, seed:)
    gen = generator(profile, seed)
    Array.new(count) { gen.value }
  end

  class Base
    attr_reader :rng

    def initialize(rng)
      @rng = rng
    end

    def object(depth = 0) = value(depth)

    private

    def pick(choices) = choices[@rng.rand(choices.size)]

    def chance(p) = @rng.rand < p
  end

  # ---------------------------------------------------------------- :wire

  class Wire < Base
    def value(depth = 0)
      r = @rng.rand(depth >= 4 ? 7 : 10)
      case r
      when 0 then pick([nil, true, false])
      when 1 then chance(0.6) ? pick(INTERESTING_INTS) : @rng.rand(-2**40..2**40)
      when 2 then float
      when 3, 4 then utf8_string
      when 5 then binary_string
      when 6 then ext_value
      when 7, 8 then Array.new(@rng.rand(chance(0.1) ? 40 : 5)) { value(depth + 1) }
      else
        h = {}
        @rng.rand(chance(0.1) ? 20 : 5).times { h[key(depth)] = value(depth + 1) }
        h
      end
    end

    def key(depth)
      case @rng.rand(8)
      when 0 then @rng.rand(-40..300)
      when 1 then nil
      when 2 then binary_string
      when 3 then depth < 3 ? [@rng.rand(5)] : true
      else utf8_string(20)
      end
    end

    def float
      case @rng.rand(4)
      when 0 then pick([0.0, -0.0, 1.5, -2.25, Float::INFINITY, -Float::INFINITY, Float::NAN, 1e300])
      when 1 then [@rng.rand * 1000].pack("g").unpack1("g") # exact as float32
      else (@rng.rand - 0.5) * 10**@rng.rand(-5..20)
      end
    end

    def utf8_string(max = 40)
      len = chance(0.03) ? @rng.rand(256..400) : @rng.rand(0..max)
      s = case @rng.rand(4)
          when 0 then Array.new(len) { pick(%w[a b é 日 🎉 x]) }.join
          when 1 then Array.new(len) { @rng.rand(256) }.pack("C*").force_encoding(Encoding::UTF_8)
          else Array.new(len) { (97 + @rng.rand(26)).chr }.join
          end
      s.force_encoding(Encoding::UTF_8)
    end

    def binary_string
      len = chance(0.03) ? @rng.rand(256..400) : @rng.rand(0..40)
      Array.new(len) { @rng.rand(256) }.pack("C*")
    end

    def ext_value
      payload_len = chance(0.5) ? pick([1, 2, 4, 8, 16]) : @rng.rand(0..20)
      payload = Array.new(payload_len) { @rng.rand(256) }.pack("C*")
      type = chance(0.3) ? pick([-1, 0, 1, 2, 3, 127, -128]) : @rng.rand(-128..127)
      ::MessagePack::ExtensionValue.new(type, payload)
    end
  end

  # ---------------------------------------------------------------- :ruby

  class RubyObjects < Base
    INT_EDGES = [0, 1, 31, 32, 127, 128, 255, 256, 32_767, 32_768, 65_535, 65_536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                 2**62 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1].freeze
    NEG_EDGES = [-1, -31, -32, -33, -127, -128, -129, -32_767, -32_768, -32_769, -2**31, -2**31 - 1, -2**32,
                 -2**62, -2**62 - 1, -2**63 + 1, -2**63].freeze
    LENGTHS = [0, 1, 2, 15, 16, 31, 32, 33, 255, 256, 257, 1000, 65_535, 65_536].freeze
    CHAR_RANGES = [0x20..0x7e, 0xa0..0x24f, 0x391..0x3c9, 0x410..0x44f, 0x3041..0x3096, 0x4e00..0x4fff,
                   0x1f300..0x1f5ff].freeze
    FLOATS = [0.0, -0.0, 1.0, -1.5, 0.1, Float::INFINITY, -Float::INFINITY, Float::NAN, Float::MAX, Float::MIN,
              5e-324, 1e300, -1e-300, 3.14159].freeze

    def value(depth = 0)
      r = @rng.rand(100)
      if depth < 4 && r < 12 then array(depth)
      elsif depth < 4 && r < 22 then map(depth)
      else scalar
      end
    end

    def scalar
      case @rng.rand(13)
      when 0 then [nil, true, false].sample(random: @rng)
      when 1, 2 then integer
      when 3 then float
      when 4, 5, 6 then utf8_string
      when 7, 8 then binary_string
      when 9 then ascii_string
      when 10 then symbol
      else @rng.rand(-40..140)
      end
    end

    def integer
      case @rng.rand(5)
      when 0 then INT_EDGES.sample(random: @rng)
      when 1 then NEG_EDGES.sample(random: @rng)
      when 2 then @rng.rand(2**(@rng.rand(1..64)))
      when 3 then -@rng.rand(2**(@rng.rand(1..63)) + 1)
      else @rng.rand(-2**63..2**64 - 1)
      end
    end

    def float
      @rng.rand(3).zero? ? FLOATS.sample(random: @rng) : (@rng.rand - 0.5) * 10**@rng.rand(-20..20)
    end

    def length
      return @rng.rand(0..40) unless @rng.rand(8).zero?

      n = LENGTHS.sample(random: @rng)
      n > 1000 && @rng.rand(4).positive? ? n - 65_280 : n # 64 KiB boundaries stay rare
    end

    # Long strings repeat a random 64-character stem so that generation stays fast.
    def stretch(n)
      stem = Array.new([n, 64].min) { yield }
      (stem * ((n / [stem.size, 1].max) + 1)).first(n)
    end

    def utf8_string
      stretch(length) { @rng.rand(CHAR_RANGES.sample(random: @rng)) }.pack("U*")
    end

    def ascii_string
      stretch(length) { @rng.rand(0x20..0x7e) }.pack("C*").force_encoding(Encoding::US_ASCII)
    end

    def binary_string
      @rng.bytes(length)
    end

    def symbol
      case @rng.rand(4)
      when 0 then Array.new(@rng.rand(1..20)) { @rng.rand(0x61..0x7a) }.pack("C*").to_sym
      when 1 then utf8_string.to_sym
      when 2 then @rng.bytes(@rng.rand(1..8)).to_sym
      else Array.new(@rng.rand(0..5)) { @rng.rand(0x41..0x5a) }.pack("C*").to_sym
      end
    end

    def size
      @rng.rand(10).zero? ? [15, 16, 17, 40].sample(random: @rng) : @rng.rand(0..6)
    end

    def array(depth)
      Array.new(size) { value(depth + 1) }
    end

    # (The differential spec's generator called this #hash.)
    def map(depth)
      h = {}
      seen = {}
      size.times do
        key = [utf8_string, ascii_string, symbol, binary_string, integer, nil, [1, "k"]].sample(random: @rng)
        norm = key.is_a?(Symbol) ? key.to_s.b : (key.is_a?(String) ? key.b : key)
        next if seen.key?(norm)

        seen[norm] = true
        h[key] = value(depth + 1)
      end
      h
    end
  end

  # ---------------------------------------------------------------- :soak

  class Soak < Base
    def string(max)
      len = @rng.rand(0..max)
      case @rng.rand(3)
      when 0 then "a" * len
      when 1 then "é" * (len / 2)
      else @rng.bytes(len)
      end
    end

    def value(depth = 0)
      case @rng.rand(depth >= 3 ? 7 : 10)
      when 0 then @rng.rand(-(2**31)..(2**31))
      when 1 then @rng.rand(-(2**63)..(2**64 - 1))
      when 2 then @rng.rand * 1e6
      when 3 then string(40)
      when 4 then [nil, true, false].sample(random: @rng)
      when 5 then :"sym#{@rng.rand(50)}"
      when 6 then string(300)
      when 7 then Array.new(@rng.rand(0..6)) { value(depth + 1) }
      when 8 then Array.new(@rng.rand(0..5)) { |i| ["k#{i}", value(depth + 1)] }.to_h
      else { @rng.rand(100) => value(depth + 1), nil => [1.5, "x"] }
      end
    end
  end

  # ---------------------------------------------------------------- :simple

  class Simple < Base
    def value(depth = 0)
      case @rng.rand(depth > 2 ? 4 : 7)
      when 0 then @rng.rand(-1000..100_000)
      when 1 then "s" * @rng.rand(0..300)
      when 2 then nil
      when 3 then @rng.rand < 0.5
      when 4 then Array.new(@rng.rand(0..4)) { value(depth + 1) }
      when 5 then Array.new(@rng.rand(0..3)) { |i| ["k#{i}", value(depth + 1)] }.to_h
      else 1.5
      end
    end
  end

  PROFILES = { wire: Wire, ruby: RubyObjects, soak: Soak, simple: Simple }.freeze
end
