# frozen_string_literal: true

# The one strict structural equality of the test suite and the benchmarks (plain Ruby, no
# RSpec, no msgpack: bench/support/ab loads it in processes that have not loaded msgpack
# yet, and into the C gem's children).
#
# StrictEquality.same?(a, b) is true only when, recursively,
#   * the classes are the same (1 != 1.0, a Struct is not its to_a, a Hash subclass is not
#     a Hash);
#   * Strings have the same encoding and the same bytes;
#   * Floats have the same 64 bits (so NaN equals a NaN with the same bits, and 0.0 is not
#     -0.0);
#   * Arrays have the same elements in the same order; Hashes the same keys and values in
#     the same order (msgpack keeps map order);
#   * Structs (MessagePack::ExtensionValue among them) have the same members, compared the
#     same way; Times the same instant down to the nanosecond;
#   * with frozen: true (the default), Strings, Arrays, Hashes and Structs are frozen on
#     both sides or on neither. Pass frozen: false when one side is a model or an
#     original that was never frozen (a round trip through MessagePack.pack/unpack).
# Anything else (Integer, Symbol, nil, true, false, user classes) falls back to ==.
#
# StrictEquality.first_difference(expected, actual) names the first place where same?
# fails (nil when it does not), for failure messages. In RSpec examples:
#   expect(actual).to strictly_equal(expected)               # frozen: true
#   expect(actual).to strictly_equal(expected, frozen: false)
#
# Used by spec/random_input_spec.rb (and script/fuzz), spec/differential_spec.rb,
# spec/vectors_spec.rb and bench/support/ab (the round-trip checks of every bench payload).
module StrictEquality
  module_function

  def same?(a, b, frozen: true)
    return false unless a.class == b.class

    case a
    when Float then float_bits(a) == float_bits(b)
    when String
      a.encoding == b.encoding && a.bytesize == b.bytesize && a.b == b.b && same_frozen?(a, b, frozen)
    when Array
      a.size == b.size && same_frozen?(a, b, frozen) && a.each_index.all? { |i| same?(a[i], b[i], frozen: frozen) }
    when Hash
      a.size == b.size && same_frozen?(a, b, frozen) &&
        a.each_pair.zip(b.each_pair).all? do |(ka, va), (kb, vb)|
          same?(ka, kb, frozen: frozen) && same?(va, vb, frozen: frozen)
        end
    when Struct
      same_frozen?(a, b, frozen) && a.to_a.zip(b.to_a).all? { |x, y| same?(x, y, frozen: frozen) }
    when Time then a == b && a.nsec == b.nsec
    else a == b
    end
  end

  # Where `expected` and `actual` first differ ("obj[2][\"k\"]: Integer vs Float"), or nil.
  def first_difference(expected, actual, path = "obj", frozen: true)
    a = expected
    b = actual
    return "#{path}: #{a.class} vs #{b.class}" unless a.class == b.class
    return "#{path}: #{a.frozen? ? "frozen" : "not frozen"} vs #{b.frozen? ? "frozen" : "not frozen"}" \
      if frozen && FROZEN_CHECKED.any? { |k| a.is_a?(k) } && !same_frozen?(a, b, true)

    case a
    when Array
      return "#{path}: size #{a.size} vs #{b.size}" unless a.size == b.size

      a.each_index do |i|
        d = first_difference(a[i], b[i], "#{path}[#{i}]", frozen: frozen)
        return d if d
      end
      nil
    when Hash
      return "#{path}: size #{a.size} vs #{b.size}" unless a.size == b.size

      a.each_pair.zip(b.each_pair).each_with_index do |((x, va), (y, vb)), i|
        key_diff = first_difference(x, y, "key", frozen: frozen)
        return "#{path}: key ##{i} #{x.inspect[0, 60]} vs #{y.inspect[0, 60]} (#{key_diff})" if key_diff

        d = first_difference(va, vb, "#{path}[#{x.inspect[0, 40]}]", frozen: frozen)
        return d if d
      end
      nil
    when Struct
      first_difference(a.to_a, b.to_a, "#{path}.to_a", frozen: frozen)
    else
      return nil if same?(a, b, frozen: frozen)

      "#{path}: #{detail(a)} vs #{detail(b)}"
    end
  end

  FROZEN_CHECKED = [String, Array, Hash, Struct].freeze

  def same_frozen?(a, b, frozen)
    !frozen || a.frozen? == b.frozen?
  end

  def float_bits(f)
    [f].pack("G")
  end

  def detail(o)
    case o
    when String then "#{o.encoding} #{o.bytesize} B #{o.inspect[0, 60]}"
    when Float then "#{o.inspect} (#{float_bits(o).unpack1("H*")})"
    else o.inspect[0, 80]
    end
  end
end

if defined?(RSpec) # (not in bench/ or script/fuzz)
  module StrictEquality
    # expect(actual).to strictly_equal(expected, frozen: false)
    class Matcher
      def initialize(expected, frozen)
        @expected = expected
        @frozen = frozen
      end

      def matches?(actual)
        @actual = actual
        StrictEquality.same?(actual, @expected, frozen: @frozen)
      end

      def description = "strictly equal #{@expected.inspect[0, 100]}"

      def failure_message
        difference = StrictEquality.first_difference(@expected, @actual, frozen: @frozen)
        "expected #{@actual.inspect[0, 300]}\n  to strictly equal #{@expected.inspect[0, 300]}\n  " \
          "first difference (expected vs actual): #{difference}"
      end

      def failure_message_when_negated = "expected #{@actual.inspect[0, 300]} not to strictly equal it"
    end

    module Matchers
      def strictly_equal(expected, frozen: true) = Matcher.new(expected, frozen)
    end
  end

  RSpec.configure { |config| config.include StrictEquality::Matchers }
end
