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
#   2. each side unpacks the other side's bytes to the same objects (StrictEquality.same?
#      without the frozen check: classes, String encodings, exact Float bits, Hash order),
#      with and without symbolize_keys.
# The objects come from RandomObjects' :ruby profile (spec/support/random_objects.rb).

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
end

RSpec.describe "differential test against the C gem (child process)" do
  before(:all) do
    @problem = DifferentialSpec.c_gem_problem
    next if @problem

    @objects = RandomObjects.values(:ruby, DifferentialSpec::COUNT, seed: DifferentialSpec::SEED)
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

  # (Values from the child come through Marshal: never frozen.)
  def same?(a, b) = StrictEquality.same?(a, b, frozen: false)

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
      same?(MessagePack.unpack(b), @child[:c_of_c][i])
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
      same?(ours, @child[:c_of_c_sym][i])
    end
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| @child[:c_of_c_sym][i].inspect[0, 200] } }
  end

  it "has the C gem unpack our bytes to what we unpack them to" do
    bad = mismatches { |i| same?(@child[:c_of_ours][i], MessagePack.unpack(@our_bytes[i])) }
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| @child[:c_of_ours][i].inspect[0, 200] } }
  end

  it "has the C gem unpack our bytes with symbolize_keys to what we get" do
    bad = mismatches do |i|
      ours = begin
        MessagePack.unpack(@our_bytes[i], symbolize_keys: true)
      rescue StandardError => e
        [:error, e.class.name]
      end
      same?(@child[:c_of_ours_sym][i], ours)
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
    bad = mismatches { |i| same?(MessagePack.unpack(@our_bytes[i]), normal.call(@objects[i])) }
    expect(bad).to be_empty, -> { "#{bad.size} mismatches:\n" + describe_failures(bad) { |i| MessagePack.unpack(@our_bytes[i]).inspect[0, 200] } }
  end
end
