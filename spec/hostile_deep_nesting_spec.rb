# frozen_string_literal: true

# Hostile input: deep nesting. Decoding raises StackError past max_depth (no recursion on the
# native stack, also through recursive ext types); packing deep or cyclic objects stops at
# the packer's max_depth with SystemStackError, as the C gem does.
# Helpers and the other topics: spec/support/hostile.rb.

require "json"
require "stringio"

RSpec.describe "Hostile input" do
  include HostileHelpers

  rs_only = HostileHelpers::RS_ONLY

  describe "deep nesting" do
    it "100,000 nested one-element arrays raise StackError (no crash) through every reader" do
      data = nested(100_000, "91")
      expect { MessagePack.unpack(data) }.to raise_error(MessagePack::StackError)
      u = MessagePack::Unpacker.new
      u.feed(data)
      expect { u.read }.to raise_error(MessagePack::StackError)
      u = MessagePack::Unpacker.new
      u.feed(data)
      expect { u.skip }.to raise_error(MessagePack::StackError)
      expect { MessagePack::Unpacker.new.feed_each(data) { nil } }.to raise_error(MessagePack::StackError)
      expect { MessagePack::Unpacker.new(StringIO.new(data)).each { nil } }.to raise_error(MessagePack::StackError)
    end

    it "100,000 nested maps, in key or in value position, raise StackError" do
      expect { MessagePack.unpack(nested(100_000, "81")) }.to raise_error(MessagePack::StackError)
      expect { MessagePack.unpack(nested(100_000, "81 01")) }.to raise_error(MessagePack::StackError)
      expect { MessagePack.unpack(nested(100_000, "dc 00 01")) }.to raise_error(MessagePack::StackError)
      expect { MessagePack.unpack(nested(100_000, "df 00 00 00 01 c0")) }.to raise_error(MessagePack::StackError)
    end

    it "128 levels decode and 129 raise, also when the data arrives byte by byte" do
      [[128, nil], [129, MessagePack::StackError]].each do |depth, error|
        u = MessagePack::Unpacker.new
        got = nil
        raised = nil
        nested(depth, "91").each_char do |c|
          u.feed(c)
          begin
            got = u.read
          rescue EOFError
            nil
          rescue MessagePack::StackError => e
            raised = e
            break
          end
        end
        if error
          expect(raised).to be_a(error)
        else
          expect(raised).to be_nil
          expect(got.flatten).to eq([1])
        end
      end
    end

    it "packs 100,000 nested Arrays and Hashes as the C gem does (no recursion on the machine stack)" do
      a = []
      cur = a
      100_000.times do
        n = []
        cur << n
        cur = n
      end
      expect(MessagePack.pack(a)).to eq(("\x91" * 100_000 + "\x90").b)
      h = {}
      cur = h
      100_000.times do
        n = {}
        cur["k"] = n
        cur = n
      end
      expect(MessagePack.pack(h)).to eq(("\x81\xa1k" * 100_000 + "\x80").b)
    end

    it "stops at the packer's max_depth (default 1,000,000) with SystemStackError, as the C gem does for cycles",
       skip: rs_only do
      a = []
      a << a
      expect { MessagePack.pack(a) }.to raise_error(SystemStackError)
      nested = [[[[1]]]]
      expect { MessagePack.pack(nested, max_depth: 3) }.to raise_error(SystemStackError)
      expect(MessagePack.pack(nested, max_depth: 4)).to eq(bin("91 91 91 91 01"))
      expect { MessagePack::Packer.new(max_depth: 3).write(nested) }.to raise_error(SystemStackError)
      deep = []
      cur = deep
      200.times { cur << (cur = []) }
      expect { MessagePack.pack(deep, max_depth: 150) }.to raise_error(SystemStackError)
      expect(MessagePack.pack(deep, max_depth: 201).bytesize).to eq(201)
    end

    context "with a recursive ext type (its proc reads the nested object from the unpacker)", :since_1_7 do
      let(:box_setup) do
        <<~'RUBY'
          Box = Struct.new(:v)
          F = MessagePack::Factory.new
          F.register_type(1, Box, packer: ->(x, pk) { pk.write(x.v) },
                                  unpacker: ->(u) { Box.new(u.read) }, recursive: true)
          def boxes(n) = "\xc7\x00\x01".b * n + "\x01".b
        RUBY
      end

      it "decodes nested boxes within the limit" do
        r = child_report(box_setup + <<~'RUBY')
          x = F.load(boxes(50))
          d = 0
          (d += 1; x = x.v) while x.is_a?(Box)
          report({ "depth" => d, "leaf" => x })
        RUBY
        expect(r).to eq("depth" => 50, "leaf" => 1)
      end

      it "100,000 nested recursive ext headers raise StackError, not SystemStackError or a crash" do
        out, err, status = child_run(box_setup + <<~'RUBY')
          report(measure { F.load(boxes(100_000)) })
        RUBY
        expect_no_crash(status, err)
        expect(JSON.parse(out.lines.last)["error"]).to eq("MessagePack::StackError")
      end

      it "a recursive ext frame counts towards max_depth", skip: rs_only do
        r = child_report(box_setup + <<~'RUBY')
          report([129, 4].map { |n| (F.load(boxes(n), max_depth: n == 4 ? 3 : 128); "ok") rescue $!.class.name })
        RUBY
        expect(r).to eq(%w[MessagePack::StackError MessagePack::StackError])
      end
    end
  end
end
