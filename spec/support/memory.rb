# frozen_string_literal: true

# Shared by the Memory specs (spec/memory_release_spec.rb, spec/memory_pressure_spec.rb,
# spec/memory_mapped_files_spec.rb): compact! on every class and the MessagePack.compact!
# cascade, the memory-pressure watcher (driven through a FIFO), and mapped-file input.
# msgpack-rs only: the C gem has none of this (skipped in oracle runs).

require "tmpdir"

# (Constants written inside a describe block would land on Object.)
module MemSpec
  MIB = 1024 * 1024
  CHUNK = ("x" * 65_536).freeze # below the write-reference threshold: copied, not referenced

  # Packs itself through a callback, which makes MessagePack.pack buffer its
  # output in the Ractor's scratch packer (plain data is written straight
  # into the returned String).
  class Callback
    def to_msgpack(packer)
      packer.write("callback")
    end
  end
end

# Temp files and sample records: `include_context "memory spec files"`.
RSpec.shared_context "memory spec files" do
  def tmpdir
    @tmpdir ||= Dir.mktmpdir("msgpack-memory-spec")
  end

  after do
    FileUtils.remove_entry(@tmpdir) if @tmpdir
    @tmpdir = nil
  end

  def write_file(name, bytes)
    path = File.join(tmpdir, name)
    File.binwrite(path, bytes)
    path
  end

  def records(count, offset = 0)
    Array.new(count) do |i|
      n = offset + i
      { "id" => n, "host" => "web-#{n % 7}", "msg" => "request #{n} " * (n % 5), "ok" => n.even?,
        "t" => n * 0.5, "tags" => ["a", n.to_s], "raw" => "\xFF#{n}".b, "nil" => nil, "neg" => -n }
    end
  end
end
