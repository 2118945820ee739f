# frozen_string_literal: true

# bench/support/ab: AB::Report, the parent's output (included into AB::Parent): the header,
# the ratio tables with geometric means and GC columns, the cross-implementation check of
# packed bytes and unpacked objects, the problems, and the optional JSON results.

require "json"

module AB
  module Report
    def first_ready(impl)
      @ready[impl].compact.first
    end

    def print_header
      puts
      puts "== #{@title}"
      @impls.each do |impl|
        first = first_ready(impl)
        next puts("   #{impl}: no successful run") unless first

        loaded = first["loaded"].map { |f| @ours_lib ? f.sub("#{@ours_lib}/", "lib/") : f }.join(" ")
        copy = impl == OURS ? ", copied at start" : ""
        puts "   #{impl.ljust(10)} #{first["version"].ljust(6)} #{loaded} (sha256 #{first["library_sha"]}#{copy})"
      end
      puts format("   %d rounds, cases alternating between the implementations; per round and child the median " \
                  "of batches over %s s; across rounds the %s. 'rounds': range of the per-round ratios",
                  @rounds, AB.env_f("BENCH_TIME"), @stat == "best" ? "best" : "median")
    end

    def value_for(impl, key)
      values = @values[impl][key].compact
      return nil if values.empty?

      @stat == "best" ? values.max : AB.median(values)
    end

    def fmt(ips, bytes)
      return "-" unless ips

      if bytes
        mbs = ips * bytes / 1e6
        if mbs >= 1e7 then format("%.0f TB/s", mbs / 1e6) # zero-copy: a shared string, not a copy
        elsif mbs >= 1e4 then format("%.0f GB/s", mbs / 1e3)
        elsif mbs >= 100 then format("%.0f MB/s", mbs)
        else format("%.1f MB/s", mbs)
        end
      elsif ips >= 1e6 then format("%.2f M/s", ips / 1e6)
      elsif ips >= 1e3 then format("%.1f k/s", ips / 1e3)
      else format("%.1f /s", ips)
      end
    end

    def print_table
      both = @impls.size == 2
      width = [@meta.values.map { |m| m["label"].size }.max.to_i, 24].max
      line = "-" * (width + (both ? 52 : 14))
      all_ratios = []
      @section_means = {}
      c_version = @impls.include?(C_GEM) ? first_ready(C_GEM)&.dig("version") : nil
      @meta.keys.group_by { |k| @meta[k]["section"] }.each do |section, keys|
        puts
        if both
          puts format("%-#{width}s %12s %12s %7s  %-11s%s", section, OURS, "C #{c_version}", "ours/C", "rounds",
                      @show_gc ? gc_header : "")
        else
          puts format("%-#{width}s %12s%s", section, @impls.first, @show_gc ? " %9s %9s" % ["GC/1k", "GCms/1k"] : "")
        end
        puts line
        ratios = []
        keys.each do |key|
          m = @meta[key]
          unless both
            puts format("%-#{width}s %12s%s", m["label"], fmt(value_for(@impls.first, key), m["bytes"]),
                        @show_gc ? gc_cells(key) : "")
            next
          end
          ours = value_for(OURS, key)
          c = value_for(C_GEM, key)
          ratio = ours && c ? ours / c : nil
          if ratio
            ratios << ratio
            all_ratios << [ratio, key]
          end
          puts format("%-#{width}s %12s %12s %7s  %-11s%s", m["label"], fmt(ours, m["bytes"]), fmt(c, m["bytes"]),
                      ratio ? format("%.2fx", ratio) : "-", round_range(key), @show_gc ? gc_cells(key) : "")
        end
        next if ratios.empty?

        @section_means[section] = AB.geomean(ratios)
        puts line
        puts format("%-#{width}s %12s %12s %6.2fx", "geometric mean (#{ratios.size})", "", "", AB.geomean(ratios))
      end
      skipped = @impls.flat_map do |i|
        (first_ready(i) || {}).fetch("skipped", {}).map { |k, v| "#{k} [#{i}: #{v}]" }
      end
      unless skipped.empty?
        puts
        puts "skipped: #{skipped.join("; ")}"
      end
      return if all_ratios.empty?

      geo = AB.geomean(all_ratios.map(&:first))
      min_ratio, min_key = all_ratios.min_by(&:first)
      max_ratio, max_key = all_ratios.max_by(&:first)
      puts
      puts format("%s overall: geometric mean %.2fx over %d ratios; min %.2fx (%s); max %.2fx (%s)",
                  @name, geo, all_ratios.size, min_ratio, min_key, max_ratio, max_key)
      @summary = { "geomean" => geo, "min" => min_ratio, "min_case" => min_key, "sections" => @section_means }
    end

    def gc_header
      format(" %9s %9s %9s %9s", "GC/1k:rs", "GC/1k:C", "GCms/1k:rs", "GCms/1k:C")
    end

    # Median across rounds of GC runs per 1,000 operations and of the GC time share.
    def gc_cells(key)
      cells = @impls.map do |impl|
        rows = @gc[impl][key].compact
        next [nil, nil] if rows.empty?

        [AB.median(rows.map(&:first)), AB.median(rows.map(&:last))]
      end
      per_kop = cells.map { |c| c[0] ? format("%.2f", c[0]) : "-" }
      ms = cells.map { |c| c[1] ? format("%.1f", c[1]) : "-" }
      return format(" %9s %9s", per_kop[0], ms[0]) if cells.size == 1

      format(" %9s %9s %9s %9s", per_kop[0], per_kop[1], ms[0], ms[1])
    end

    # Range of the ratios ours/C of each round (timed seconds apart).
    def round_range(key)
      ours = @values[OURS][key]
      c = @values[C_GEM][key]
      ratios = (0...@rounds).filter_map { |r| ours[r] && c[r] ? ours[r] / c[r] : nil }
      return "" if ratios.empty?

      format("%.2f-%.2f", ratios.min, ratios.max)
    end

    def compare_checks
      reference = {}
      @impls.each do |impl|
        @ready[impl].each_with_index do |res, idx|
          next unless res

          res["checks"].each do |name, entry|
            ref_impl, ref = reference[name]
            unless ref
              reference[name] = [impl, entry]
              next
            end
            %w[sha fp].each do |field|
              next if entry[field].nil? || ref[field].nil? || entry[field] == ref[field]

              what = field == "sha" ? "packed bytes" : "unpacked objects"
              msg = +"#{name}: #{what} differ between #{ref_impl} and #{impl}"
              msg << " (round #{idx + 1})" if impl == ref_impl
              if field == "sha"
                msg << format(" (%d vs %d bytes); compare `ruby -I lib %s --dump %s | xxd` with `ruby %s --dump %s | xxd`",
                              ref["bytes"], entry["bytes"], rel(@script), name.inspect, rel(@script), name.inspect)
              else
                diff = (ref["stats"].keys | entry["stats"].keys).filter_map do |k|
                  a = ref["stats"][k]
                  b = entry["stats"][k]
                  "#{k}: #{a || 0} vs #{b || 0}" unless a == b
                end
                msg << " (#{diff.empty? ? "same kinds and counts, different values" : diff.join(", ")})"
              end
              problem(msg)
            end
          end
        end
      end
      round_trips = @problems.any? { |p| p.include?("round trip differs") } ? "FAILED (see below)" : "ok"
      across = if @impls.size < 2 then ""
               elsif @problems.any? { |p| p.include?(" differ between ") }
                 "; packed bytes / unpacked objects DIFFER across implementations (see below)"
               else "; packed bytes and unpacked objects identical across implementations"
               end
      puts
      puts "checks: #{reference.size} payloads; round trips in every child #{round_trips}#{across}"
    end

    def rel(path)
      path.delete_prefix("#{REPO_ROOT}/")
    end

    def print_problems
      return if @problems.empty?

      puts
      puts "PROBLEMS (#{@problems.size}):"
      @problems.each { |p| puts "  - #{p}" }
    end

    def write_json
      dir = ENV["BENCH_JSON_DIR"]
      return if dir.nil? || dir.empty?

      require "fileutils"
      FileUtils.mkdir_p(dir)
      path = File.join(dir, "#{@name}.json")
      File.write(path, JSON.pretty_generate("name" => @name, "stat" => @stat, "summary" => @summary,
                                            "problems" => @problems, "cases" => @meta,
                                            "ips_per_round" => @values, "children" => @ready))
      puts "raw results: #{path}"
    end
  end
end
