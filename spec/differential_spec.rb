# frozen_string_literal: true

require "open3"
require "rbconfig"
require "tmpdir"

# Differential test against the C gem (Debian's ruby-msgpack) running in a child
# process: both gems define MessagePack, so they never share a process. Data goes
# both ways with Marshal through temp files.
#
# For a few thousand seeded random nested objects it checks that
#   1. our MessagePack.pack and the C gem's produce identical bytes;
#   2. each side unpacks the other side's bytes to the same objects (including String
#      encodings and exact Float bits), with and without symbolize_keys.

module DifferentialSpec
  SEED = 0x5EED_2024
  COUNT = 3000

  CHILD = <<~'RUBY'
    repo_root, input_path, output_path = ARGV
    require "msgpack"
    feats = $LOADED_FEATURES.grep(/msgpack/)
    if feats.any? { |f| f.include?("msgpack_rs") || f.start_with?(repo_root + "/") }
      abort "child loaded msgpack-rs instead of the C gem: #{feats.inspect}"
    end
    guard = ->(&blk) { begin blk.call; rescue StandardError => e; [:error, e.class.name] end }
    objects, our_bytes = Marshal.load(File.binread(input_path))
    c_bytes = objects.map { |o| guard.call { MessagePack.pack(o) } }
    decode = lambda do |list, opts|
      list.map { |b| b.is_a?(String) ? guard.call { MessagePack.unpack(b, opts) } : nil }
    end
    result = {
      version: MessagePack::VERSION,
      ruby: RUBY_DESCRIPTION,
      features: feats,
      c_bytes: c_bytes,
      c_of_ours: decode.call(our_bytes, {}),
      c_of_ours_sym: decode.call(our_bytes, { symbolize_keys: true }),
      c_of_c: decode.call(c_bytes, {}),
      c_of_c_sym: decode.call(c_bytes, { symbolize_keys: true }),
    }
    File.binwrite(output_path, Marshal.dump(result))
  RUBY

  # The Ruby that runs the C gem: this one by default. In the Ruby 3.4 chroot of the
  # matrix (script/rubies) it is sid's Ruby 3.3, the only Ruby Debian builds msgpack
  # 1.8.5 for; Marshal carries the data across.
  ORACLE_RUBY = ENV.fetch("MSGPACK_RS_ORACLE_RUBY", "").then { |r| r.empty? ? RbConfig.ruby : r }

  module_function

  def child_env
    { "RUBYLIB" => nil, "RUBYOPT" => nil, "GEM_HOME" => nil }
  end

  # nil when the C gem can be loaded (without our lib on the path), else the reason.
  def c_gem_problem
    out, err, status = Open3.capture3(child_env, ORACLE_RUBY, "-e",
                                      'require "msgpack"; print $LOADED_FEATURES.grep(/msgpack/).join("\n")',
                                      chdir: "/")
    return "`ruby -e 'require \"msgpack\"'` failed: #{err.lines.first}" unless status.success?
    return "the child loaded msgpack-rs, not the C gem" if out.include?("msgpack_rs") || out.include?(REPO_ROOT + "/")

    nil
  end

  def run_child(objects, our_bytes)
    Dir.mktmpdir("msgpack-differential") do |dir|
      input = File.join(dir, "in.bin")
      output = File.join(dir, "out.bin")
      File.binwrite(input, Marshal.dump([objects, our_bytes]))
      _out, err, status = Open3.capture3(child_env, ORACLE_RUBY, "-e", CHILD, REPO_ROOT, input, output, chdir: "/")
      raise "differential child failed: #{err}" unless status.success?

      Marshal.load(File.binread(output))
    end
  end

  # Structure + String encodings + exact Float bits.
  def signature(obj)
    case obj
    when Hash then [:map, obj.map { |k, v| [signature(k), signature(v)] }]
    when Array then obj.first == :error && obj.size == 2 ? obj : [:array, obj.map { |v| signature(v) }]
    when String then [:str, obj.encoding == Encoding::BINARY ? "BINARY" : obj.encoding.name, obj.b]
    when Symbol then [:sym, obj.to_s.encoding.name, obj.to_s.b]
    when Float then [:float, [obj].pack("G")]
    when Integer, true, false, nil then obj
    else [:other, obj.class.name, obj.inspect]
    end
  end

  class Generator
    INT_EDGES = [0, 1, 31, 32, 127, 128, 255, 256, 32_767, 32_768, 65_535, 65_536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                 2**62 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1].freeze
    NEG_EDGES = [-1, -31, -32, -33, -127, -128, -129, -32_767, -32_768, -32_769, -2**31, -2**31 - 1, -2**32,
                 -2**62, -2**62 - 1, -2**63 + 1, -2**63].freeze
    LENGTHS = [0, 1, 2, 15, 16, 31, 32, 33, 255, 256, 257, 1000, 65_535, 65_536].freeze
    CHAR_RANGES = [0x20..0x7e, 0xa0..0x24f, 0x391..0x3c9, 0x410..0x44f, 0x3041..0x3096, 0x4e00..0x4fff,
                   0x1f300..0x1f5ff].freeze
    FLOATS = [0.0, -0.0, 1.0, -1.5, 0.1, Float::INFINITY, -Float::INFINITY, Float::NAN, Float::MAX, Float::MIN,
              5e-324, 1e300, -1e-300, 3.14159].freeze

    def initialize(seed)
      @rng = Random.new(seed)
    end

    def object(depth = 0)
      r = @rng.rand(100)
      if depth < 4 && r < 12 then array(depth)
      elsif depth < 4 && r < 22 then hash(depth)
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
      Array.new(size) { object(depth + 1) }
    end

    def hash(depth)
      h = {}
      seen = {}
      size.times do
        key = [utf8_string, ascii_string, symbol, binary_string, integer, nil, [1, "k"]].sample(random: @rng)
        norm = key.is_a?(Symbol) ? key.to_s.b : (key.is_a?(String) ? key.b : key)
        next if seen.key?(norm)

        seen[norm] = true
        h[key] = object(depth + 1)
      end
      h
    end
  end
end

RSpec.describe "differential test against the C gem (child process)" do
  before(:all) do
    @problem = DifferentialSpec.c_gem_problem
    next if @problem

    gen = DifferentialSpec::Generator.new(DifferentialSpec::SEED)
    @objects = Array.new(DifferentialSpec::COUNT) { gen.object }
    @our_bytes = @objects.map { |o| MessagePack.pack(o) }
    @child = DifferentialSpec.run_child(@objects, @our_bytes)
    RSpec.configuration.reporter.message(
      "differential oracle: C msgpack #{@child[:version]} under #{@child[:ruby]}"
    )
  end

  # CI installs the C gem on every Ruby of the matrix (script/setup, script/rubies):
  # there its absence is a failure. Elsewhere the examples are skipped.
  before do
    next unless @problem
    raise "C gem not available: #{@problem}" if ENV["CI"]

    skip "C gem not available: #{@problem}"
  end

  def sig(obj) = DifferentialSpec.signature(obj)

  def mismatches
    out = []
    @objects.each_index { |i| out << i unless yield(i) }
    out
  end

  def describe_failures(indexes, &detail)
    indexes.first(3).map { |i| "##{i} #{@objects[i].inspect[0, 200]}\n  #{detail.call(i)}" }.join("\n")
  end

  it "runs the C gem in the child process" do
    expect(@child[:features].join).not_to include("msgpack_rs")
    expect(@child[:version]).to match(/\A\d+\.\d+\.\d+\z/)
    expect(@objects.size).to eq(DifferentialSpec::COUNT)
  end

  it "covers every type in the generated data" do
    flat = []
    walk = lambda do |o|
      flat << o
      o.each { |e| walk.call(e) } if o.is_a?(Array)
      o.each { |k, v| walk.call(k); walk.call(v) } if o.is_a?(Hash)
    end
    @objects.each { |o| walk.call(o) }
    classes = flat.map(&:class).uniq
    expect(classes).to include(NilClass, TrueClass, FalseClass, Integer, Float, String, Symbol, Array, Hash)
    expect(flat.grep(String).map(&:encoding).uniq)
      .to include(Encoding::UTF_8, Encoding::BINARY, Encoding::US_ASCII)
    ints = flat.grep(Integer)
    expect(ints).to include(2**64 - 1, -2**63)
  end

  it "packs to identical bytes" do
    bad = mismatches { |i| @our_bytes[i] == @child[:c_bytes][i] }
    expect(bad).to be_empty, lambda {
      "#{bad.size} objects pack differently:\n" +
        describe_failures(bad) { |i| "ours=#{@our_bytes[i].unpack1('H*')[0, 120]}\n  c=#{@child[:c_bytes][i].inspect[0, 120]}" }
    }
  end

  it "unpacks the C gem's bytes like the C gem does" do
    bad = mismatches do |i|
      b = @child[:c_bytes][i]
      sig(MessagePack.unpack(b)) == sig(@child[:c_of_c][i])
    end
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| @child[:c_of_c][i].inspect[0, 200] } }
  end

  it "unpacks the C gem's bytes like the C gem does with symbolize_keys" do
    bad = mismatches do |i|
      ours = begin
        MessagePack.unpack(@child[:c_bytes][i], symbolize_keys: true)
      rescue StandardError => e
        [:error, e.class.name]
      end
      sig(ours) == sig(@child[:c_of_c_sym][i])
    end
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| @child[:c_of_c_sym][i].inspect[0, 200] } }
  end

  it "has the C gem unpack our bytes to what we unpack them to" do
    bad = mismatches { |i| sig(@child[:c_of_ours][i]) == sig(MessagePack.unpack(@our_bytes[i])) }
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| @child[:c_of_ours][i].inspect[0, 200] } }
  end

  it "has the C gem unpack our bytes with symbolize_keys to what we get" do
    bad = mismatches do |i|
      ours = begin
        MessagePack.unpack(@our_bytes[i], symbolize_keys: true)
      rescue StandardError => e
        [:error, e.class.name]
      end
      sig(@child[:c_of_ours_sym][i]) == sig(ours)
    end
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| @child[:c_of_ours_sym][i].inspect[0, 200] } }
  end

  it "round-trips every object to its msgpack normal form" do
    normal = lambda do |o|
      case o
      when Symbol then o.to_s.encoding == Encoding::BINARY ? o.to_s.b : o.to_s.encode(Encoding::UTF_8)
      when String then o.encoding == Encoding::BINARY ? o : o.dup.force_encoding(Encoding::UTF_8)
      when Array then o.map { |e| normal.call(e) }
      when Hash then o.to_h { |k, v| [normal.call(k), normal.call(v)] }
      else o
      end
    end
    bad = mismatches { |i| sig(MessagePack.unpack(@our_bytes[i])) == sig(normal.call(@objects[i])) }
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| MessagePack.unpack(@our_bytes[i]).inspect[0, 200] } }
  end
end
