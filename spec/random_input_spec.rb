# frozen_string_literal: true

# Random and mutated input through every decoding entry point: a bounded pass of the fuzz
# in spec/support/random_input_fuzz.rb (what a case is and what it must satisfy is described
# there; the models come from RandomObjects' :wire profile).
#
# The pass runs script/fuzz in a child Ruby (so a crash or hang fails the example instead of
# killing rspec) and has it write the current case to a progress file, so a crash names its
# case.
#
#   CASES=30000      number of cases (default 30000; the pass also stops after FUZZ_SECONDS)
#   FUZZ_SECONDS=20  time budget of the pass
#   SEED=1234        seed (default fixed; SEED=random picks one and prints it)
#   GC_STRESS=1      run a much smaller pass (GC_STRESS_CASES, default 60) under GC.stress
#
# Long runs and replays of a reported case use script/fuzz directly (see its header):
#   ruby -I lib script/fuzz --cases 500000 --seconds 3600 --seed 1
#   ruby -I lib script/fuzz --seed 1592651789 --first 1234 --cases 1
require "json"
require "open3"
require "tmpdir"

RSpec.describe "Random and mutated input", skip: (MSGPACK_SPEC_ORACLE ? "msgpack-rs only" : false) do
  def seed_from_env
    case ENV["SEED"]
    when nil, "" then RandomInputFuzz::DEFAULT_SEED
    when "random" then Random.new_seed % 2**31
    else Integer(ENV["SEED"])
    end
  end

  # Runs the pass in a child Ruby (script/fuzz); returns the parsed summary.
  def run_pass(cases:, seconds:, seed:, gc_stress: false, extra: [])
    Dir.mktmpdir("msgpack-fuzz") do |dir|
      progress = File.join(dir, "progress")
      args = [RbConfig.ruby, *SPEC_CHILD_LOAD_ARGS, File.join(REPO_ROOT, "script", "fuzz"),
              "--cases", cases.to_s, "--seconds", seconds.to_s, "--seed", seed.to_s, "--progress", progress]
      args << "--gc-stress" if gc_stress
      args.concat(extra)
      watchdog = seconds + 60
      out = +""
      err = +""
      status = nil
      Open3.popen3({ "RUBYOPT" => nil, "RUBYLIB" => nil }, *args, chdir: REPO_ROOT) do |stdin, stdout, stderr, wait|
        stdin.close
        readers = [Thread.new { out << stdout.read }, Thread.new { err << stderr.read }]
        unless wait.join(watchdog)
          Process.kill(:KILL, wait.pid)
          wait.join
          raise "random pass hung (killed after #{watchdog}s); case in progress: #{File.read(progress)}"
        end
        readers.each(&:join)
        status = wait.value
      end
      line = out.lines.last
      unless line&.start_with?("{")
        current = File.exist?(progress) ? File.read(progress).strip : "(none)"
        raise "random pass died (#{status.inspect}); case in progress (index plain/ext options hex): " \
              "#{current}\nstderr: #{err[0, 3000]}"
      end
      JSON.parse(line, symbolize_names: true).merge(status: status.exitstatus, stderr: err)
    end
  end

  def report(summary)
    warn "\n  random pass: seed #{summary[:seed]}, #{summary[:seconds]}s, #{summary[:stats].to_a.sort.to_h}"
  end

  if ENV["GC_STRESS"]
    it "survives random and mutated input under GC.stress" do
      cases = Integer(ENV.fetch("GC_STRESS_CASES", "60"))
      summary = run_pass(cases: cases, seconds: Float(ENV.fetch("FUZZ_SECONDS", "120")), seed: seed_from_env,
                         gc_stress: true)
      report(summary)
      expect(summary[:failures]).to eq([])
      expect(summary[:status]).to eq(0)
    end
  else
    it "gives a value or a documented exception for every random and mutated input" do
      cases = Integer(ENV.fetch("CASES", "30000"))
      summary = run_pass(cases: cases, seconds: Float(ENV.fetch("FUZZ_SECONDS", "20")), seed: seed_from_env)
      report(summary)
      expect(summary[:failures]).to eq([])
      expect(summary[:status]).to eq(0)
      expect(summary[:stats][:cases]).to be > 500 # the pass really ran
    end
  end

  it "reports a crash of the child with the case in progress (harness self-test)" do
    expect { run_pass(cases: 50, seconds: 10, seed: 1, extra: %w[--crash-at 7]) }
      .to raise_error(RuntimeError, /random pass died .*case in progress \(index plain\/ext options hex\): 7 /m)
  end

  it "accepts only the documented exception classes (the list the pass checks against)" do
    expect(RandomInputFuzz::ALLOWED).to eq([MessagePack::UnpackError, EOFError, EncodingError])
    expect(MessagePack::MalformedFormatError.ancestors).to include(MessagePack::UnpackError)
    expect(MessagePack::StackError.ancestors).to include(MessagePack::UnpackError)
    expect(MessagePack::UnknownExtTypeError.ancestors).to include(MessagePack::UnpackError)
    expect(MessagePack::UnexpectedTypeError.ancestors).to include(MessagePack::UnpackError)
  end

  it "round-trips the loose encoder's output for a fixed sample (the generator itself is sound)" do
    rng = Random.new(42)
    200.times do
      model = RandomObjects.generator(:wire, rng).value
      enc = RandomInputFuzz::LooseEncoder.new(rng).encode(model)
      got = MessagePack.unpack(enc.out, allow_unknown_ext: true)
      expect(StrictEquality.same?(got, model, frozen: false)).to be(true), "#{enc.out.unpack1('H*')} -> #{got.inspect}"
    end
  end
end
