%% bench/erlang/bench_runtime.erl — the programs of bench/bench_runtime.c on Erlang/OTP, with
%% the same output lines ("name value"), so bench/runtime.sh can set them side by side.
%%
%%   erlc -o DIR bench_runtime.erl
%%   erl -noshell -pa DIR -s bench_runtime main MODE [N] -s init stop
%%
%% MODE: spawn pingpong ring restart memory all. Plain processes, `!` and receive; time
%% from erlang:monotonic_time(nanosecond) around the measured part only.
%%
%%   spawn     N processes spawn(fun() -> ok end) (default 1,000,000), timed until the
%%             process count is back where it started -> spawn_exit_per_s
%%   pingpong  N messages between two processes (default 2,000,000) -> pingpong_msgs_per_s
%%   ring      a token passed N hops around a ring of 10,000 processes (default 2,000,000)
%%             -> ring_msgs_per_s, ring_setup_s
%%   restart   an OTP supervisor (one_for_one, intensity 1000000, period 1) with one
%%             permanent worker, N crashes (default 10,000). The worker is a plain process
%%             started with spawn_link (cheaper than a gen_server); each sample is the time
%%             from just before `Worker ! crash` (the worker then calls exit(crash)) to the
%%             first thing the replacement does. The logger's primary level is set to none,
%%             so the supervisor's child_terminated reports cost only the level check.
%%             -> restart_latency_median_us, restart_latency_p99_us (+ mean, first/last
%%             1,000 medians)
%%   memory    N idle processes (default 100,000) blocked in receive.
%%             -> bytes_per_actor_runtime (erlang:memory(processes) delta / N, minus the
%%                bench process itself), bytes_per_actor_rss (/proc/self/statm delta / N)
-module(bench_runtime).
-behaviour(supervisor).

-export([main/1, init/1, start_worker/1, idle/0, noop/0]).

main(Args) ->
    {Mode, N} = case Args of
                    [] -> {all, 0};
                    [M] -> {list_to_atom(atom_to_list(M)), 0};
                    [M, C | _] -> {M, list_to_integer(atom_to_list(C))}
                end,
    Modes = [{memory, fun memory/1, 100000}, {spawn, fun spawn_exit/1, 1000000},
             {pingpong, fun pingpong/1, 2000000}, {ring, fun ring/1, 2000000},
             {restart, fun restart/1, 10000}],
    Run = [F(if N > 0 -> N; true -> D end) || {Name, F, D} <- Modes,
                                             Mode =:= all orelse Mode =:= Name],
    case Run of
        [] -> io:format(standard_error, "unknown mode ~p~n", [Mode]), halt(2);
        _ -> ok
    end.

now_ns() -> erlang:monotonic_time(nanosecond).

per_s(Count, Ns) -> round(Count * 1.0e9 / Ns).

out(Name, Value) when is_integer(Value) -> io:format("~s ~b~n", [Name, Value]);
out(Name, Value) -> io:format("~s ~.2f~n", [Name, Value]).

%% ---- spawn + exit ---------------------------------------------------------------------------

noop() -> ok.

spawn_exit(N) ->
    Base = erlang:system_info(process_count),
    spawn_loop(1000), wait_count(Base), % warm-up
    T0 = now_ns(),
    spawn_loop(N),
    wait_count(Base),
    T1 = now_ns(),
    out("spawn_exit_per_s", per_s(N, T1 - T0)).

spawn_loop(0) -> ok;
spawn_loop(N) -> spawn(fun noop/0), spawn_loop(N - 1).

wait_count(Base) ->
    case erlang:system_info(process_count) > Base of
        true -> erlang:yield(), wait_count(Base);
        false -> ok
    end.

%% ---- ping-pong and ring: processes that pass a counter to their peer -----------------------

relay(Parent) -> receive {peer, Next} -> relay(Parent, Next) end.

relay(Parent, Next) ->
    receive
        0 -> Parent ! token_done, relay(Parent, Next);
        K when is_integer(K) -> Next ! K - 1, relay(Parent, Next);
        stop -> ok
    end.

run_token(First, N) ->
    T0 = now_ns(),
    First ! N,
    receive token_done -> ok end,
    now_ns() - T0.

pingpong(N) ->
    Self = self(),
    A = spawn(fun() -> relay(Self) end),
    B = spawn(fun() -> relay(Self) end),
    A ! {peer, B}, B ! {peer, A},
    run_token(A, 10000), % warm-up
    Ns = run_token(A, N),
    out("pingpong_msgs_per_s", per_s(N, Ns)),
    A ! stop, B ! stop.

ring(N) ->
    Size = 10000,
    Self = self(),
    T0 = now_ns(),
    Pids = [spawn(fun() -> relay(Self) end) || _ <- lists:seq(1, Size)],
    [First | _] = Pids,
    link_ring(Pids, First),
    T1 = now_ns(),
    run_token(First, Size), % warm-up: one lap
    Ns = run_token(First, N),
    out("ring_msgs_per_s", per_s(N, Ns)),
    out("ring_setup_s", (T1 - T0) / 1.0e9),
    [P ! stop || P <- Pids],
    ok.

link_ring([Last], First) -> Last ! {peer, First};
link_ring([P, Q | Rest], First) -> P ! {peer, Q}, link_ring([Q | Rest], First).

%% ---- restart latency ------------------------------------------------------------------------

init(Bench) ->
    {ok, {#{strategy => one_for_one, intensity => 1000000, period => 1},
          [#{id => w, start => {?MODULE, start_worker, [Bench]}, restart => permanent,
             shutdown => brutal_kill, type => worker}]}}.

start_worker(Bench) ->
    {ok, spawn_link(fun() -> worker(Bench) end)}.

worker(Bench) ->
    T = now_ns(),
    Bench ! {started, self(), T},
    receive crash -> exit(crash) end.

restart(N) ->
    logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(?MODULE, self()),
    W0 = receive {started, P, _} -> P end,
    Lat = crash_loop(W0, N, []),
    Sorted = lists:sort(Lat),
    Len = length(Sorted),
    K = if N >= 2000 -> 1000; true -> N div 2 end,
    out("restart_latency_median_us", lists:nth(Len div 2 + 1, Sorted) / 1000),
    out("restart_latency_p99_us", lists:nth(min(Len, trunc(Len * 0.99) + 1), Sorted) / 1000),
    out("restart_latency_mean_us", lists:sum(Lat) / Len / 1000),
    out("restart_latency_first1000_median_us", median(lists:sublist(Lat, K)) / 1000),
    out("restart_latency_last1000_median_us", median(lists:nthtail(Len - K, Lat)) / 1000),
    unlink(Sup), exit(Sup, shutdown),
    logger:set_primary_config(level, notice).

crash_loop(_, 0, Acc) -> lists:reverse(Acc);
crash_loop(W, N, Acc) ->
    T0 = now_ns(),
    W ! crash,
    receive
        {started, W2, T1} -> crash_loop(W2, N - 1, [T1 - T0 | Acc])
    end.

median(L) -> lists:nth(length(L) div 2 + 1, lists:sort(L)).

%% ---- memory per idle process ----------------------------------------------------------------

idle() -> receive stop -> ok end.

%% erlang:memory(processes) without this process (its heap is not an idle actor's cost).
proc_mem() ->
    garbage_collect(),
    {memory, Own} = process_info(self(), memory),
    erlang:memory(processes) - Own.

rss() ->
    {ok, Bin} = file:read_file("/proc/self/statm"),
    [_, Res | _] = string:lexemes(binary_to_list(Bin), " \n"),
    list_to_integer(Res) * 4096.

memory(N) ->
    M0 = proc_mem(), R0 = rss(),
    idle_loop(N),
    timer:sleep(200), % every new process reaches its receive
    M1 = proc_mem(), R1 = rss(),
    out("bytes_per_actor_runtime", round((M1 - M0) / N)),
    out("bytes_per_actor_rss", round((R1 - R0) / N)),
    %% the idle processes are found by their current function: no list of them was kept
    [exit(P, kill) || P <- erlang:processes(),
                      process_info(P, current_function) =:= {current_function, {?MODULE, idle, 0}}],
    ok.

idle_loop(0) -> ok;
idle_loop(N) -> spawn(fun ?MODULE:idle/0), idle_loop(N - 1).
