# frozen_string_literal: true

# Hostile input: an ext proc that uses the unpacker or packer that called it (each crash-prone
# scenario runs in a child, spec/support/hostile.rb), recursive ext types, and ext procs
# that start another decoder or packer.

require "json"
require "stringio"

RSpec.describe "Hostile input" do
  include HostileHelpers

  rs_only = HostileHelpers::RS_ONLY

  describe "an ext proc using the unpacker or packer that called it" do
    # Each scenario runs in a child so that a crash fails the example instead of rspec.
    # Allowed outcomes: it works, or it raises a clear MessagePack::UnpackError (msgpack-rs
    # says "... in use (re-entrant call ...)"); afterwards the unpacker must still work.
    {
      "feed" => "u.feed(bin('07'))",
      "read" => "u.read",
      "skip" => "u.skip",
      "reset" => "u.reset",
      "each" => "u.each { }",
      "feed_each" => "u.feed_each(bin('07')) { }",
      "full_unpack" => "u.full_unpack",
      "read_array_header" => "u.read_array_header",
      "skip_nil" => "u.skip_nil",
      "buffer.clear" => "u.buffer.clear",
      "buffer.read" => "u.buffer.read",
      "register_type" => "u.register_type(2) { |d| d }",
    }.each do |name, call|
      it "unpacker ext proc calling #{name} on its own unpacker: works or raises UnpackError, never crashes" do
        out, err, status = child_run(<<~RUBY)
          u = MessagePack::Unpacker.new
          u.register_type(1) { |d| #{call}; d }
          u.feed(bin("92 d4 01 78 02 03"))
          first = begin
            [:value, u.read]
          rescue Exception => e
            [:error, e.class.name, e.message]
          end
          u.reset
          u.feed(bin("92 01 02"))
          report("first" => first, "after_reset" => u.read)
        RUBY
        expect_no_crash(status, err)
        expect(status).to be_success, err[0, 2000]
        r = JSON.parse(out.lines.last)
        first = r["first"]
        if first[0] == "error"
          expect(first[1]).to match(/\AMessagePack::|\AEOFError\z/), first.inspect
        end
        expect(r["after_reset"]).to eq([1, 2])
      end
    end

    it "re-entrant calls raise MessagePack::UnpackError naming the problem", skip: rs_only do
      u = MessagePack::Unpacker.new
      u.register_type(1) { |d| u.feed("\x01") && d }
      u.feed(bin("92 d4 01 78 02"))
      expect { u.read }.to raise_error(MessagePack::UnpackError, /in use \(re-entrant call/)
    end

    it "unpacker ext proc calling MessagePack.unpack / Factory#load (another decoder) works" do
      f = MessagePack::Factory.new
      f.register_type(1, Object, unpacker: ->(d) { f.load(d) })
      expect(f.load(bin("92 c7 02 01 91 07 05"))).to eq([[7], 5])
      g = MessagePack::Factory.new
      g.register_type(1, Object, unpacker: ->(d) { MessagePack.unpack(d) })
      expect(g.load(bin("92 c7 02 01 91 07 05"))).to eq([[7], 5])
    end

    it "unpacker ext proc that modifies the source String does not affect the decode" do
      f = MessagePack::Factory.new
      data = bin("92 d4 01 41 da 01 00") + "a".b * 256
      f.register_type(1, Object, unpacker: ->(d) { data.replace("zzzz") && d })
      got = f.load(data)
      expect(got[0]).to eq("A")
      expect(got[1]).to eq("a" * 256)
    end

    context "recursive ext types (their proc is given the unpacker by design)", :since_1_7 do
      let(:setup) do
        <<~'RUBY'
          Box = Struct.new(:v)
          def factory(&unpacker)
            f = MessagePack::Factory.new
            f.register_type(1, Box, packer: ->(x, pk) { pk.write(x.v) }, unpacker: unpacker, recursive: true)
            f
          end
        RUBY
      end

      it "reading the nested objects works" do
        r = child_report(setup + <<~'RUBY')
          f = factory { |u| Box.new(u.read) }
          v = f.load(f.dump([Box.new([1, Box.new(2)]), 3]))
          report(v.inspect)
        RUBY
        expect(r).to eq("[#<struct Box v=[1, #<struct Box v=2>]>, 3]")
      end

      it "an exception from the inner read propagates and the unpacker is reusable after reset" do
        r = child_report(setup + <<~'RUBY')
          f = factory { |u| Box.new(u.read) }
          u = f.unpacker
          u.feed(bin("92 01 c7 00 01 c1 02"))
          e = (u.read rescue $!)
          u.reset
          u.feed(f.dump([Box.new(1)]))
          report([e.class.name, u.read.inspect])
        RUBY
        expect(r).to eq(["MessagePack::MalformedFormatError", "[#<struct Box v=1>]"])
      end

      it "a proc that rescues an error from its inner read does not crash" do
        out, err, status = child_run(setup + <<~'RUBY')
          f = factory { |u| Box.new((u.read rescue $!.class.name)) }
          u = f.unpacker
          u.feed(bin("92 01 c7 00 01 c1 02"))
          report((u.read.inspect rescue "#{$!.class}"))
        RUBY
        expect_no_crash(status, err)
        expect(status).to be_success
        expect(out).not_to be_empty
      end

      it "a proc that calls reset on its unpacker does not crash" do
        out, err, status = child_run(setup + <<~'RUBY')
          f = factory { |u| u.reset; :x }
          u = f.unpacker
          u.feed(bin("92 01 c7 00 01 02"))
          report((u.read.inspect rescue "#{$!.class}"))
        RUBY
        expect_no_crash(status, err)
        expect(status).to be_success
        # The outer object it was part of is gone: the outer read fails cleanly.
        expect(out).to include("MessagePack::UnpackError")
      end

      it "a proc that calls feed, skip or full_unpack on its unpacker does not crash" do
        %w[u.feed(bin("05")) u.skip u.full_unpack u.buffer.clear].each do |call|
          out, err, status = child_run(setup + <<~RUBY)
            f = factory { |u| x = u.read; #{call}; Box.new(x) }
            u = f.unpacker
            u.feed(bin("92 92 01 c7 00 01 91 05 03 04 07"))
            r = (u.read.inspect rescue "\#{$!.class}")
            u.reset
            u.feed(bin("01"))
            report([r, u.read])
          RUBY
          expect_no_crash(status, err)
          expect(status).to be_success, "#{call}: #{err[0, 1500]}"
          expect(JSON.parse(out.lines.last)[1]).to eq(1), call
        end
      end
    end

    it "packer ext proc writing to its own packer (non-recursive) interleaves like the C gem" do
      k = Class.new
      outputs = {
        "pk.write(5)" => "9205d4017801",
        "pk.write_nil" => "92c0d4017801",
        "pk.write_array_header(1)" => "9291d4017801",
        "pk.write_ext(3, 'z')" => "92d4037ad4017801",
        "pk.flush" => "92d4017801",
        "pk.to_s" => "92d4017801",
        "pk.buffer.clear" => "d4017801",
        "pk.full_pack" => "d4017801",
      }
      outputs.each do |call, expected|
        pk = MessagePack::Packer.new
        pk.register_type(1, k) do |_|
          eval(call)
          "x"
        end
        pk.write([k.new, 1])
        expect(hex(pk.to_s).delete(" ")).to eq(expected), call
      end
    end

    it "recursive packer ext proc calling flush on its IO-backed packer keeps the output well-formed",
       :since_1_7 do
      box = Struct.new(:v)
      f = MessagePack::Factory.new
      f.register_type(1, box, packer: ->(x, pk) { pk.write(x.v) && pk.flush },
                              unpacker: ->(u) { box.new(u.read) }, recursive: true)
      io = StringIO.new(+"")
      pk = f.packer(io)
      pk.write([box.new([1, 2]), 3])
      pk.flush
      expect(hex(io.string)).to eq("92 c7 03 01 92 01 02 03")
    end

    it "packer ext proc calling MessagePack.pack / Factory#dump (another packer) works" do
      k = Class.new
      f = MessagePack::Factory.new
      f.register_type(1, k, packer: ->(_) { MessagePack.pack([1, 2]) })
      expect(hex(f.dump([k.new]))).to eq("91 c7 03 01 92 01 02")
      g = MessagePack::Factory.new
      g.register_type(1, k, packer: ->(_) { g.dump(2) })
      expect(hex(g.dump([k.new]))).to eq("91 d4 01 02")
    end
  end
end
