# frozen_string_literal: true

# Packing deeply nested data (issue part 5). Arrays and Hashes nested deeper than 64
# levels are walked with a heap stack, so any depth packs, in any Ractor, as with the C
# gem (100,000 nested Arrays give 100,001 bytes). The Packer option max_depth (default
# 1,000,000) bounds the walk: deeper nesting, such as a cycle, raises SystemStackError.
# It used to raise SystemStackError from 4,096 levels on.
#
# spec/hostile_deep_nesting_spec.rb has the plain 100,000-level Array and Hash cases and
# small max_depth values; this file covers every entry point, mixed nesting, callbacks
# (to_msgpack, ext packers) inside deep data, the default bound, cycles, and Ractors.

module DeepPack
  module_function

  def arrays(depth, leaf = nil)
    top = leaf.nil? ? [] : [leaf]
    depth.pred.times { top = [top] }
    top
  end

  def hashes(depth)
    top = {}
    depth.pred.times { top = { "k" => top } }
    top
  end

  # Alternating Array and Hash levels, the innermost holding `leaf`.
  def mixed(depth, leaf)
    top = leaf
    depth.times { |i| top = i.even? ? [top] : { "m" => top } }
    top
  end

  def mixed_bytes(depth, leaf_bytes)
    prefix = Array.new(depth) { |i| (depth - 1 - i).even? ? "\x91".b : "\x81\xA1m".b }.join
    prefix + leaf_bytes
  end

  # Depth of decoded nesting, walked without recursion.
  def depth_of(obj)
    d = 0
    while obj.is_a?(Array) || obj.is_a?(Hash)
      d += 1
      obj = obj.is_a?(Array) ? obj.first : obj.values.first
    end
    [d, obj]
  end

  class Leaf # packs itself through a to_msgpack callback
    def to_msgpack(pk = nil) = pk ? pk.write("leaf") : MessagePack.pack("leaf")
  end

  class Ext # packed by an ext packer registered on a factory
    attr_reader :v
    def initialize(v) = @v = v
  end

  # Its to_msgpack packs a 100,000-level Array through the packer it is given.
  class DeepWriter
    def to_msgpack(pk = nil)
      return MessagePack.pack(self) unless pk

      pk.write(DeepPack.arrays(100_000))
    end
  end
end

RSpec.describe "Packing deeply nested data" do
  rs_only = MSGPACK_SPEC_ORACLE ? "msgpack-rs option (max_depth) or behaviour" : false
  let(:deep_arrays) { DeepPack.arrays(100_000) }
  let(:array_bytes) { ("\x91" * 99_999 + "\x90").b }

  it "100,000 nested Arrays give the same 100,000 bytes through every entry point" do
    expect(array_bytes.bytesize).to eq(100_000) # 99,999 one-element Arrays around []
    expect(MessagePack.pack(deep_arrays)).to eq(array_bytes)
    expect(MessagePack.dump(deep_arrays)).to eq(array_bytes)
    expect(deep_arrays.to_msgpack).to eq(array_bytes)
    expect(MessagePack::Packer.new.write(deep_arrays).to_s).to eq(array_bytes)
    expect(MessagePack::Factory.new.dump(deep_arrays)).to eq(array_bytes)
    expect(MessagePack::Factory.new.packer.write(deep_arrays).full_pack).to eq(array_bytes)
    io = StringIO.new(+"".b)
    MessagePack.pack(deep_arrays, io)
    expect(io.string).to eq(array_bytes)
    io = StringIO.new(+"".b)
    MessagePack::Packer.new(io, io_buffer_size: 1024).write(deep_arrays).write(1).flush
    expect(io.string).to eq(array_bytes + "\x01".b)
  end

  it "100,001 levels (100,000 one-element Arrays around []) give the C gem's 100,001 bytes" do
    expect(MessagePack.pack([deep_arrays])).to eq(("\x91" * 100_000 + "\x90").b)
  end

  it "100,000 nested Hashes and alternating Array/Hash levels pack exactly" do
    expect(MessagePack.pack(DeepPack.hashes(100_000))).to eq(("\x81\xA1k" * 99_999 + "\x80").b)
    expect(MessagePack.pack(DeepPack.mixed(100_000, 7))).to eq(DeepPack.mixed_bytes(100_000, "\x07".b))
    expect(MessagePack.pack(DeepPack.mixed(100_001, "s"))).to eq(DeepPack.mixed_bytes(100_001, "\xA1s".b))
  end

  it "deep packs decode back (with a matching max_depth) to the same nesting", skip: rs_only do
    back = MessagePack.unpack(MessagePack.pack(DeepPack.mixed(100_000, "bottom")), max_depth: 100_000)
    expect(DeepPack.depth_of(back)).to eq([100_000, "bottom"])
  end

  it "siblings after a deep branch are written in order" do
    data = [DeepPack.arrays(5_000, 1), { "after" => [2, DeepPack.hashes(3_000)] }, 3]
    bytes = MessagePack.pack(data)
    expected = "\x93".b + "\x91".b * 5_000 + "\x01\x81\xA5after\x92\x02".b + "\x81\xA1k".b * 2_999 + "\x80\x03".b
    expect(bytes).to eq(expected)
  end

  describe "callbacks inside deep data" do
    it "a to_msgpack callback at the bottom of 100,000 levels is called" do
      expect(MessagePack.pack(DeepPack.arrays(100_000, DeepPack::Leaf.new))).to eq(("\x91" * 100_000 + "\xA4leaf").b)
    end

    it "an ext packer at the bottom of 100,000 mixed levels is called", :since_1_5 do
      f = MessagePack::Factory.new
      f.register_type(3, DeepPack::Ext, packer: ->(e) { [e.v].pack("N") }, unpacker: ->(s) { DeepPack::Ext.new(s.unpack1("N")) })
      bytes = f.dump(DeepPack.mixed(100_000, DeepPack::Ext.new(9)))
      expect(bytes).to eq(DeepPack.mixed_bytes(100_000, "\xD6\x03\x00\x00\x00\x09".b))
      expect(f.packer.write(DeepPack.mixed(100_000, DeepPack::Ext.new(9))).to_s).to eq(bytes)
    end

    it "a to_msgpack callback that writes 100,000 levels through its packer" do
      expect(MessagePack.pack([DeepPack::DeepWriter.new, 1])).to eq("\x92".b + array_bytes + "\x01".b)
    end

    # Nesting made by Ruby code calling back into the packer on every level recurses on
    # the machine stack through Ruby: Ruby's own check must stop it with SystemStackError.
    # In a child process, so that a crash fails this example only.
    it "to_msgpack callbacks that recurse 100,000 levels raise SystemStackError (no crash), then packing goes on" do
      stdout, stderr, status = run_isolated_ruby(<<~'RUBY')
        require "msgpack"
        class Node
          def initialize(child) = @child = child
          def to_msgpack(pk = nil)
            return MessagePack.pack(self) unless pk
            pk.write_array_header(1)
            @child.nil? ? pk.write_nil : pk.write(@child)
          end
        end
        n = nil
        1_000.times { n = Node.new(n) }
        small = MessagePack.pack(n)
        99_000.times { n = Node.new(n) }
        err = begin
          MessagePack.pack(n)
          :no_error
        rescue SystemStackError => e
          e.class
        end
        p [small.bytesize, err, MessagePack.pack([1, { "a" => 2 }]).unpack1("H*")]
      RUBY
      expect([status.success?, stdout]).to eq([true, %([1001, SystemStackError, "920181a16102"]\n)]), stderr[0, 2000]
    end
  end

  describe "the max_depth packer option", skip: rs_only do
    # Builds about 1,000,000 Arrays (100 MB): in a child process.
    it "defaults to 1,000,000: that many levels pack, one more raises SystemStackError" do
      stdout, stderr, status = run_isolated_ruby(<<~'RUBY')
        require "msgpack"
        a = []
        cur = a
        999_999.times { n = []; cur << n; cur = n }
        ok = MessagePack.pack(a) == ("\x91" * 999_999 + "\x90").b
        cur << []
        err = begin
          MessagePack.pack(a)
          :no_error
        rescue SystemStackError => e
          e.class
        end
        p [ok, err, MessagePack.pack(a, max_depth: 1_000_001).bytesize]
      RUBY
      expect([status.success?, stdout]).to eq([true, "[true, SystemStackError, 1000001]\n"]), stderr[0, 2000]
    end

    it "cycles through Arrays and Hashes raise SystemStackError; packing goes on afterwards" do
      a = []
      a << a
      h = {}
      h["self"] = h
      x = [1]
      y = { "x" => x }
      x << y
      [a, h, x, [1, 2, { "deep" => a }]].each do |cyclic|
        expect { MessagePack.pack(cyclic) }.to raise_error(SystemStackError)
        expect { MessagePack.pack(cyclic, max_depth: 50) }.to raise_error(SystemStackError)
        expect { MessagePack::Packer.new(max_depth: 50).write(cyclic) }.to raise_error(SystemStackError)
        expect { MessagePack::Factory.new.packer(max_depth: 50).write(cyclic) }.to raise_error(SystemStackError)
      end
      expect(MessagePack.pack([1, { "a" => [2] }])).to eq("\x92\x01\x81\xA1a\x91\x02".b)
    end

    it "counts every Array and Hash level, at the boundary" do
      data = DeepPack.mixed(300, 1) # 300 levels
      expect(MessagePack.pack(data, max_depth: 300)).to eq(DeepPack.mixed_bytes(300, "\x01".b))
      expect { MessagePack.pack(data, max_depth: 299) }.to raise_error(SystemStackError)
      expect(MessagePack::Packer.new(max_depth: 300).write(data).to_s).to eq(DeepPack.mixed_bytes(300, "\x01".b))
    end
  end

  describe "in a non-main Ractor", :ractor, skip: (MSGPACK_SPEC_ORACLE ? "the C gem is not Ractor-safe" : false) do
    it "packs 100,000 nested Arrays and Hashes, raises SystemStackError at max_depth and for a cycle, and goes on" do
      Warning[:experimental] = false
      r = Ractor.new do
        a = DeepPack.arrays(100_000)
        h = DeepPack.hashes(100_000)
        m = DeepPack.mixed(100_001, DeepPack::Leaf.new)
        cyc = []
        cyc << cyc
        errs = [-> { MessagePack.pack(a, max_depth: 99_999) }, -> { MessagePack.pack(cyc) },
                -> { MessagePack::Packer.new(max_depth: 10).write(h) }].map do |l|
          l.call
          :no_error
        rescue SystemStackError => e
          e.class
        end
        [MessagePack.pack(a) == ("\x91" * 99_999 + "\x90").b,
         MessagePack.pack(h) == ("\x81\xA1k" * 99_999 + "\x80").b,
         MessagePack::Packer.new.write(m).to_s == DeepPack.mixed_bytes(100_001, "\xA4leaf".b),
         MessagePack.pack(a, max_depth: 100_000).bytesize, errs, MessagePack.pack([1]).bytes]
      end
      expect(ractor_value(r)).to eq([true, true, true, 100_000, [SystemStackError] * 3, [0x91, 1]])
    end
  end
end
