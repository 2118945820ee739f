# frozen_string_literal: true

# bench/support/ab: comparing the objects the implementations produce. Round trips are
# checked with StrictEquality (spec/support/strict_equality.rb, the same helper the specs
# use); across processes the parent compares fingerprints (a digest that also covers
# frozenness).

require "digest"
require_relative "../../../spec/support/strict_equality"

module AB
  module_function

  # A digest of an object graph that includes what StrictEquality.same? checks (without
  # frozen:) plus frozenness.
  # `stats` counts objects by kind ("str UTF-8 frozen" => 12, ...), to explain a
  # fingerprint mismatch between implementations.
  def fingerprint(obj)
    digest = Digest::SHA256.new
    stats = Hash.new(0)
    describe(obj, digest, stats)
    [digest.hexdigest[0, 16], stats.sort.to_h]
  end

  def describe(o, d, stats)
    fz = o.frozen? ? "frozen" : "mutable"
    case o
    when String
      stats["str #{o.encoding} #{fz}"] += 1
      d << "s#{o.encoding.name}/#{fz}/#{o.bytesize}:" << o.b
    when Symbol then stats["symbol"] += 1
                     d << "y#{o.to_s.bytesize}:" << o.to_s.b
    when Integer then stats["int"] += 1
                      d << "i#{o};"
    when Float then stats["float"] += 1
                    d << "f" << [o].pack("G")
    when nil, true, false then d << "#{o.inspect};"
    when Array
      stats["array #{fz}"] += 1
      d << "a#{o.size}/#{fz}["
      o.each { |x| describe(x, d, stats) }
      d << "]"
    when Hash
      stats["hash #{fz}"] += 1
      d << "h#{o.size}/#{fz}{"
      o.each do |k, v|
        describe(k, d, stats)
        describe(v, d, stats)
      end
      d << "}"
    when Time
      stats["time"] += 1
      d << "t#{o.to_i}.#{o.nsec};"
    when Struct
      stats["struct #{o.class.name}"] += 1
      d << "S#{o.class.name}("
      o.to_a.each { |x| describe(x, d, stats) }
      d << ")"
    else
      stats[o.class.name.to_s] += 1
      vars = o.instance_variables.map { |iv| [iv, o.instance_variable_get(iv)] }
      d << "o#{o.class.name}("
      vars.each do |iv, v|
        d << iv.to_s
        describe(v, d, stats)
      end
      d << ")"
    end
  end
end
