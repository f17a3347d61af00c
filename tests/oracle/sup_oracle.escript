#!/usr/bin/env escript
%% -*- erlang -*-
%%! +S 1:1 +SDcpu 1:1 +SDio 1 +A 1 +sbwt none +sbwtdcpu none +sbwtdio none
%%
%% sup_oracle.escript FILE.json
%%
%% The reference for `macula sup-run`: builds the supervision tree of a scenario file
%% (docs/sup-run.md) with OTP's real `supervisor` module, plays the script in real time and
%% prints the trace, one line per event, on stdout.
%%
%% How the trace is made deterministic:
%%  - one scheduler (+S 1), so signals and messages are delivered in the order they are sent;
%%  - one tracer process receives every event (start lines from the start functions, which run
%%    inside the supervisors; terminate/exit lines from its own monitors on every child and
%%    supervisor; call results from the driver) and prints them in arrival order;
%%  - `remove` lines come from the supervisor's real state (sys:get_state), read by a helper
%%    process while the tracer holds back the following lines, so the tracer never blocks
%%    (children register with it synchronously while they start);
%%  - the driver starts the root ~50 ms after a whole second of the monotonic clock (OTP
%%    stamps restarts in whole seconds), sleeps until each step's time, and after each step
%%    waits until every process is idle before the next step.
%%  - `start` vs `restart`: decided in the start function from the supervisor's own stack: a
%%    start made from gen_server:init_it (the supervisor's init) or gen_server:try_handle_call
%%    (an API call) is a `start`, one made from handle_info/handle_cast (an exit, a
%%    try_again_restart) is a `restart`.
-module(sup_oracle).
-mode(compile).

-export([main/1]).
%% supervisor callback
-export([init/1]).
%% start functions (run inside the supervisors) and worker process
-export([start_worker/2, start_sup/3, start_instance/3, worker_init/3]).

-define(TRACER, sup_oracle_tracer).
-define(TAB, sup_oracle_tab).

%% Copy of supervisor.erl's state record (OTP 25, stdlib-4.2), used to read sys:get_state.
-record(state, {name, strategy, children = {[], #{}}, dynamics, intensity, period,
                restarts = [], dynamic_restarts = 0, auto_shutdown, module, args}).

%%% ===========================================================================================
%%% main / driver
%%% ===========================================================================================

main([File]) ->
    try
        run(File)
    catch
        throw:{scenario, Msg} ->
            io:format(standard_error, "sup_oracle: ~s: ~s~n", [File, Msg]),
            erlang:halt(2);
        C:R:S ->
            io:format(standard_error, "sup_oracle: ~s: ~p:~p~n~p~n", [File, C, R, S]),
            erlang:halt(3)
    end;
main(_) ->
    io:format(standard_error, "usage: sup_oracle.escript FILE.json~n", []),
    erlang:halt(64).

run(File) ->
    erlang:system_info(otp_release) =:= "25" orelse
        io:format(standard_error, "sup_oracle: warning: written for OTP 25, running on OTP ~s~n",
                  [erlang:system_info(otp_release)]),
    _ = logger:remove_handler(default),
    ok = logger:set_primary_config(level, none),
    _ = erlang:system_flag(backtrace_depth, 100),
    {ok, Bin} = case file:read_file(File) of
                    {ok, _} = Ok -> Ok;
                    {error, E} -> throw({scenario, io_lib:format("cannot read: ~p", [E])})
                end,
    Doc = case catch json_decode(Bin) of
              {ok, D} -> D;
              {json_error, Why} -> throw({scenario, ["bad JSON: ", Why]});
              Other -> throw({scenario, io_lib:format("bad JSON: ~p", [Other])})
          end,
    {Tree, Steps} = check_doc(Doc),
    ?TAB = ets:new(?TAB, [named_table, public, set]),
    process_flag(trap_exit, true),
    Tracer = spawn_link(fun tracer_init/0),
    register(?TRACER, Tracer),
    T0 = align(),
    ets:insert(?TAB, {t0, T0}),
    Root = case supervisor:start_link(?MODULE, {"root", Tree, none, none}) of
               {ok, Pid} ->
                   tline(["start root"], Pid),
                   Pid;
               {error, _} ->
                   undefined
           end,
    settle(),
    play(Steps, Root, T0),
    stop_root(Root),
    settle(),
    sync_tracer(),
    erlang:halt(0).

%% Wait until the monotonic clock is 50 ms past a whole second; returns that time in ms.
align() ->
    Now = erlang:monotonic_time(millisecond),
    Ms = floor_mod(Now, 1000),
    Wait = case Ms =< 50 of
               true -> 50 - Ms;
               false -> 1050 - Ms
           end,
    sleep_until(Now + Wait),
    Now + Wait.

floor_mod(A, B) -> ((A rem B) + B) rem B.

sleep_until(T) ->
    D = T - erlang:monotonic_time(millisecond),
    case D > 0 of
        true -> receive after D -> ok end;
        false -> ok
    end.

%% Wait until everything is idle: nothing in any run queue (one scheduler).
settle() ->
    receive after 5 -> ok end,
    settle(0).
settle(N) when N >= 3 -> ok;
settle(N) ->
    case erlang:statistics(total_run_queue_lengths_all) of
        0 -> receive after 1 -> ok end, settle(N + 1);
        _ -> receive after 2 -> ok end, settle(0)
    end.

play([], _Root, _T0) -> ok;
play([Step | Rest], Root, T0) ->
    At = maps:get(<<"at">>, Step),
    sleep_until(T0 + At),
    case is_alive(Root) of
        false -> ok;
        true ->
            do_step(Step, Root),
            settle(),
            play(Rest, Root, T0)
    end.

is_alive(undefined) -> false;
is_alive(Pid) -> is_process_alive(Pid).

stop_root(Root) ->
    case is_alive(Root) of
        true ->
            Ref = monitor(process, Root),
            exit(Root, shutdown),
            receive {'DOWN', Ref, process, Root, _} -> ok end;
        false ->
            ok
    end.

sync_tracer() ->
    Ref = make_ref(),
    ?TRACER ! {sync, self(), Ref},
    receive {synced, Ref} -> ok end.

tline(Line) -> ?TRACER ! {line, iolist_to_binary(Line)}.
tline(Line, Pid) -> ?TRACER ! {line, iolist_to_binary(Line), Pid}.

do_step(#{<<"exit">> := Path, <<"reason">> := R}, _Root) ->
    case lookup_worker(Path) of
        undefined -> ok;
        Pid -> Pid ! {do_exit, parse_reason(R)}
    end;
do_step(#{<<"kill">> := Path}, _Root) ->
    case lookup_pid(Path) of
        undefined -> ok;
        Pid -> exit(Pid, kill)
    end;
do_step(#{<<"fail_starts">> := Path, <<"count">> := N}, _Root) ->
    ets:insert(?TAB, {{fail, Path}, N});
do_step(#{<<"ignore_shutdown">> := Path}, _Root) ->
    case lookup_worker(Path) of
        undefined -> ok;
        Pid ->
            Ref = monitor(process, Pid),
            Pid ! {ignore_shutdown, self(), Ref},
            receive
                {ignoring, Ref} -> ok;
                {'DOWN', Ref, process, Pid, _} -> ok
            end,
            demonitor(Ref, [flush])
    end;
do_step(#{<<"stop">> := true}, Root) ->
    stop_root(Root);
do_step(#{<<"call">> := Op} = Step, _Root) ->
    do_call(Op, Step).

lookup_pid(undefined) -> undefined;
lookup_pid(Path) ->
    case ets:lookup(?TAB, {pid, iolist_to_binary(Path)}) of
        [{_, Pid}] -> Pid;
        [] -> undefined
    end.

%% The last pid of a supervisor path (possibly dead: calls then answer noproc); undefined for
%% a path that never was a supervisor.
lookup_sup(Path) ->
    case lookup_pid(Path) of
        undefined -> undefined;
        Pid ->
            case ets:member(?TAB, {strategy, Pid}) of
                true -> Pid;
                false -> undefined
            end
    end.

%% The pid of a worker path; exit and ignore_shutdown apply to workers only.
lookup_worker(Path) ->
    case lookup_pid(Path) of
        undefined -> undefined;
        Pid ->
            case ets:member(?TAB, {strategy, Pid}) of
                true -> undefined;
                false -> Pid
            end
    end.

dirname_basename(Path) ->
    L = binary_to_list(Path),
    case string:split(L, "/", trailing) of
        [Dir, Base] -> {list_to_binary(Dir), list_to_binary(Base)};
        _ -> {undefined, list_to_binary(L)}
    end.

sup_strategy(SupPid) ->
    case ets:lookup(?TAB, {strategy, SupPid}) of
        [{_, S}] -> S;
        [] -> undefined
    end.

%% API calls. Each prints `call OP PATH RESULT` once the call has returned.
do_call(<<"start_child">>, #{<<"sup">> := SupPath} = Step) ->
    SupPid = lookup_sup(SupPath),
    case sup_strategy(SupPid) of
        simple_one_for_one ->
            %% numbered per supervisor process: a restarted pool starts again at 1
            Key = {instances, SupPid},
            N = ets:update_counter(?TAB, Key, 1, {Key, 0}),
            Path = [SupPath, "/", integer_to_list(N)],
            R = catch supervisor:start_child(SupPid, [N]),
            call_line("start_child", Path, fmt_result(R));
        _ when SupPid =:= undefined ->
            Path = case maps:find(<<"child">>, Step) of
                       {ok, Child} -> [SupPath, "/", maps:get(<<"id">>, Child)];
                       error -> SupPath
                   end,
            call_line("start_child", Path, "error:noproc");
        _ ->
            Child = maps:get(<<"child">>, Step),
            Path = [SupPath, "/", maps:get(<<"id">>, Child)],
            Spec = child_spec(iolist_to_binary(SupPath), Child),
            R = catch supervisor:start_child(SupPid, Spec),
            call_line("start_child", Path, fmt_result(R))
    end;
do_call(Op, #{<<"path">> := Path}) when Op =:= <<"which_children">>;
                                        Op =:= <<"count_children">> ->
    Res = case lookup_sup(Path) of
              undefined -> "error:noproc";
              SupPid when Op =:= <<"which_children">> ->
                  case catch supervisor:which_children(SupPid) of
                      L when is_list(L) -> fmt_which(SupPid, L);
                      Other -> fmt_result(Other)
                  end;
              SupPid ->
                  case catch supervisor:count_children(SupPid) of
                      L when is_list(L) ->
                          io_lib:format("specs=~w,active=~w,supervisors=~w,workers=~w",
                                        [proplists:get_value(K, L)
                                         || K <- [specs, active, supervisors, workers]]);
                      Other -> fmt_result(Other)
                  end
          end,
    call_line(Op, Path, Res);
do_call(Op, #{<<"path">> := Path}) ->
    {SupPath, Id} = dirname_basename(Path),
    Res = case lookup_sup(SupPath) of
              undefined -> "error:noproc";
              SupPid ->
                  IdArg = case sup_strategy(SupPid) of
                              simple_one_for_one when Op =:= <<"terminate_child">> ->
                                  instance_ref(Path, Id);
                              _ ->
                                  binary_to_atom(Id, utf8)
                          end,
                  R = case Op of
                          <<"terminate_child">> -> catch supervisor:terminate_child(SupPid, IdArg);
                          <<"restart_child">> -> catch supervisor:restart_child(SupPid, IdArg);
                          <<"delete_child">> -> catch supervisor:delete_child(SupPid, IdArg)
                      end,
                  fmt_result(R)
          end,
    call_line(Op, Path, Res).

%% terminate_child on a simple_one_for_one supervisor goes by pid: the instance's last pid,
%% or, for a number that never had one, a pid that is not alive (OTP answers `ok` for it).
instance_ref(Path, Id) ->
    case catch binary_to_integer(Id) of
        N when is_integer(N) ->
            case lookup_pid(Path) of
                undefined -> dead_pid();
                Pid -> Pid
            end;
        _ ->
            binary_to_atom(Id, utf8)
    end.

dead_pid() ->
    {Pid, Ref} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', Ref, process, Pid, _} -> Pid end.

call_line(Op, Path, Res) ->
    tline(["call ", Op, " ", Path, " ", Res]).

fmt_result(ok) -> "ok";
fmt_result({ok, _}) -> "ok";
fmt_result({ok, _, _}) -> "ok";
fmt_result({error, {already_started, _}}) -> "error:already_started";
fmt_result({error, {R, C}}) when is_tuple(C), element(1, C) =:= child -> ["error:", fmt_reason(R)];
fmt_result({error, R}) -> ["error:", fmt_reason(R)];
fmt_result({'EXIT', {noproc, _}}) -> "error:noproc";
fmt_result({'EXIT', {R, _}}) -> ["error:", fmt_reason(R)];
fmt_result(Other) -> io_lib:format("~w", [Other]).

fmt_which(SupPid, L) ->
    Items = case sup_strategy(SupPid) of
                simple_one_for_one ->
                    Running = [{instance_no(P), "running"} || {_, P, _, _} <- L, is_pid(P)],
                    %% `restarting` entries carry no pid: take them from the real state
                    Restarting = case [x || {_, restarting, _, _} <- L] of
                                     [] -> [];
                                     _ -> [{instance_no(P), "restarting"}
                                           || P <- restarting_pids(SupPid)]
                                 end,
                    [[integer_to_list(N), ":", S] || {N, S} <- lists:sort(Running ++ Restarting)];
                _ ->
                    [[atom_to_list(Id), ":", child_state(P)] || {Id, P, _, _} <- L]
            end,
    ["[", lists:join(",", Items), "]"].

restarting_pids(SupPid) ->
    case catch sys:get_state(SupPid, infinity) of
        #state{dynamics = {_, Db}} -> [P || {restarting, P} <- maps:keys(Db)];
        _ -> []
    end.

instance_no(P) ->
    case ets:lookup(?TAB, {path_of, P}) of
        [{_, Path}] ->
            {_, Base} = dirname_basename(Path),
            binary_to_integer(Base);
        [] -> unknown
    end.

child_state(P) when is_pid(P) -> "running";
child_state(restarting) -> "restarting";
child_state(undefined) -> "undefined".

fmt_reason(normal) -> "normal";
fmt_reason({shutdown, {failed_to_start_child, _, _}}) -> "{shutdown,failed_to_start_child}";
fmt_reason({shutdown, X}) when is_atom(X) -> ["{shutdown,", atom_to_list(X), "}"];
fmt_reason(A) when is_atom(A) -> atom_to_list(A);
fmt_reason(Other) -> io_lib:format("~w", [Other]).

parse_reason(<<"{shutdown,", Rest/binary>>) ->
    Sz = byte_size(Rest) - 1,
    <<W:Sz/binary, "}">> = Rest,
    {shutdown, binary_to_atom(W, utf8)};
parse_reason(W) ->
    binary_to_atom(W, utf8).

%%% ===========================================================================================
%%% supervisor callback and child specs
%%% ===========================================================================================

%% Path: this supervisor's path; Sup: its JSON object; Parent: the parent supervisor (none for
%% the root); Check: how the tracer decides `remove` when it ends (none | {static, Id} |
%% {instance, Path}).
init({Path, Sup, Parent, Check}) ->
    register_with_tracer(Path, supervisor, Parent, Check),
    Strategy = binary_to_atom(maps:get(<<"strategy">>, Sup, <<"one_for_one">>), utf8),
    ets:insert(?TAB, [{{pid, iolist_to_binary(Path)}, self()},
                      {{path_of, self()}, iolist_to_binary(Path)},
                      {{strategy, self()}, Strategy}]),
    Flags = #{strategy => Strategy,
              intensity => maps:get(<<"intensity">>, Sup, 1),
              period => maps:get(<<"period">>, Sup, 5),
              auto_shutdown => binary_to_atom(maps:get(<<"auto_shutdown">>, Sup, <<"never">>),
                                              utf8)},
    Children = maps:get(<<"children">>, Sup, []),
    Specs = case Strategy of
                simple_one_for_one ->
                    [T] = Children,
                    [template_spec(iolist_to_binary(Path), T)];
                _ ->
                    [child_spec(iolist_to_binary(Path), C) || C <- Children]
            end,
    {ok, {Flags, Specs}}.

common_spec(C) ->
    Type = binary_to_atom(maps:get(<<"type">>, C, <<"worker">>), utf8),
    Shutdown = case maps:get(<<"shutdown">>, C, default) of
                   default when Type =:= worker -> 5000;
                   default -> infinity;
                   <<"brutal_kill">> -> brutal_kill;
                   <<"infinity">> -> infinity;
                   N when is_integer(N) -> N
               end,
    #{restart => binary_to_atom(maps:get(<<"restart">>, C, <<"permanent">>), utf8),
      type => Type,
      shutdown => Shutdown,
      significant => maps:get(<<"significant">>, C, false)}.

child_spec(SupPath, C) ->
    Id = maps:get(<<"id">>, C),
    Path = <<SupPath/binary, "/", Id/binary>>,
    S = common_spec(C),
    Check = case maps:get(restart, S) of
                temporary -> {static, binary_to_atom(Id, utf8)};
                _ -> none
            end,
    Start = case maps:get(type, S) of
                worker -> {?MODULE, start_worker, [Path, Check]};
                supervisor -> {?MODULE, start_sup, [Path, C, Check]}
            end,
    S#{id => binary_to_atom(Id, utf8), start => Start}.

template_spec(SupPath, C) ->
    S = common_spec(C),
    S#{id => binary_to_atom(maps:get(<<"id">>, C), utf8),
       start => {?MODULE, start_instance, [SupPath, C]}}.

%%% ===========================================================================================
%%% start functions: they run inside the supervisor process
%%% ===========================================================================================

start_kind() ->
    {current_stacktrace, St} = process_info(self(), current_stacktrace),
    case [x || {gen_server, F, _, _} <- St, F =:= init_it orelse F =:= try_handle_call] of
        [] -> "restart";
        _ -> "start"
    end.

take_fail(Path) ->
    case ets:lookup(?TAB, {fail, Path}) of
        [{K, N}] when N > 0 ->
            ets:insert(?TAB, {K, N - 1}),
            true;
        _ ->
            false
    end.

start_worker(Path, Check) ->
    case take_fail(Path) of
        true ->
            tline(["start_failed ", Path]),
            {error, start_failed};
        false ->
            Kind = start_kind(),
            {ok, Pid} = proc_lib:start_link(?MODULE, worker_init, [Path, self(), Check]),
            tline([Kind, " ", Path], Pid),
            {ok, Pid}
    end.

start_sup(Path, C, Check) ->
    case take_fail(Path) of
        true ->
            tline(["start_failed ", Path]),
            {error, start_failed};
        false ->
            Kind = start_kind(),
            case supervisor:start_link(?MODULE, {Path, C, self(), Check}) of
                {ok, Pid} ->
                    tline([Kind, " ", Path], Pid),
                    {ok, Pid};
                Error ->
                    Error
            end
    end.

start_instance(SupPath, C, N) when is_integer(N) ->
    Path = <<SupPath/binary, "/", (integer_to_binary(N))/binary>>,
    Check = {instance, Path},
    case maps:get(<<"type">>, C, <<"worker">>) of
        <<"worker">> -> start_worker(Path, Check);
        <<"supervisor">> -> start_sup(Path, C, Check)
    end.

%%% ===========================================================================================
%%% test worker
%%% ===========================================================================================

worker_init(Path, Parent, Check) ->
    process_flag(trap_exit, true),
    register_with_tracer(Path, worker, Parent, Check),
    ets:insert(?TAB, [{{pid, Path}, self()}, {{path_of, self()}, Path}]),
    proc_lib:init_ack({ok, self()}),
    worker_loop(Parent, false).

worker_loop(Parent, Ignore) ->
    receive
        {'EXIT', Parent, R} when not Ignore ->
            exit(R);
        {'EXIT', _, _} ->
            worker_loop(Parent, Ignore);
        {do_exit, R} ->
            exit(R);
        {ignore_shutdown, From, Ref} ->
            From ! {ignoring, Ref},
            worker_loop(Parent, true)
    end.

register_with_tracer(Path, Kind, Parent, Check) ->
    Ref = make_ref(),
    ?TRACER ! {register, self(), Ref, iolist_to_binary(Path), Kind, Parent, Check},
    receive {registered, Ref} -> ok end.

%%% ===========================================================================================
%%% tracer
%%% ===========================================================================================
%%% Output items are queued in arrival order and written as soon as every item before them
%%% is settled: a `remove` check waits for the helper that reads the supervisor's state.

-record(tr, {mons = #{},      % MonRef => {Path, Kind, Parent, Check, Pid}
             started = #{},   % Pid => true once its start line was seen
             queue = [],      % reversed pending output: {line,B} | {check,Ref} | {sync,From,Ref}
             checks = #{}}).  % HelperRef => result (line or none) once known

tracer_init() ->
    process_flag(trap_exit, true),
    tracer_loop(#tr{}).

tracer_loop(S) ->
    receive
        {register, From, Ref, Path, Kind, Parent, Check} ->
            Mon = monitor(process, From),
            From ! {registered, Ref},
            tracer_loop(S#tr{mons = maps:put(Mon, {Path, Kind, Parent, Check, From},
                                             S#tr.mons)});
        {line, Line} ->
            tracer_loop(push({line, Line}, S));
        {line, Line, Pid} ->
            tracer_loop(push({line, Line}, S#tr{started = maps:put(Pid, true, S#tr.started)}));
        {'DOWN', Mon, process, Pid, Reason} ->
            case maps:take(Mon, S#tr.mons) of
                {{Path, Kind, Parent, Check, Pid}, Mons} ->
                    Word = case Kind of worker -> "terminate"; supervisor -> "exit" end,
                    S1 = push({line, iolist_to_binary([Word, " ", Path, " ",
                                                        fmt_reason(Reason)])},
                              S#tr{mons = Mons}),
                    Started = maps:is_key(Pid, S#tr.started),
                    S2 = case Check of
                             none -> S1;
                             _ when not Started -> S1;
                             _ when not is_pid(Parent) -> S1;
                             _ ->
                                 Me = self(),
                                 HRef = make_ref(),
                                 spawn(fun() -> Me ! {check, HRef, check_remove(Path, Pid,
                                                                                Parent, Check)}
                                       end),
                                 push({check, HRef}, S1)
                         end,
                    tracer_loop(S2#tr{started = maps:remove(Pid, S2#tr.started)});
                error ->
                    tracer_loop(S)
            end;
        {check, HRef, Result} ->
            tracer_loop(flush(S#tr{checks = maps:put(HRef, Result, S#tr.checks)}));
        {sync, From, Ref} ->
            tracer_loop(push({sync, From, Ref}, S));
        {'EXIT', _, _} ->
            tracer_loop(S)
    end.

push(Item, S) ->
    flush(S#tr{queue = S#tr.queue ++ [Item]}).

flush(#tr{queue = []} = S) -> S;
flush(#tr{queue = [{line, Line} | Rest]} = S) ->
    io:put_chars([Line, "\n"]),
    flush(S#tr{queue = Rest});
flush(#tr{queue = [{sync, From, Ref} | Rest]} = S) ->
    From ! {synced, Ref},
    flush(S#tr{queue = Rest});
flush(#tr{queue = [{check, HRef} | Rest], checks = Checks} = S) ->
    case maps:take(HRef, Checks) of
        {none, C1} -> flush(S#tr{queue = Rest, checks = C1});
        {Line, C1} -> flush(S#tr{queue = [{line, Line} | Rest], checks = C1});
        error -> S
    end.

%% Runs in a helper: has the (still alive) supervisor discarded the child? The request queues
%% behind whatever the supervisor is doing (handling the EXIT, finishing an API call or a
%% restart), so the answer reflects the state once that is done. If the supervisor ends
%% instead, the call fails and nothing is printed.
check_remove(Path, OldPid, SupPid, Check) ->
    case catch sys:get_state(SupPid, infinity) of
        #state{children = {_Ids, Db}, dynamics = Dyn} ->
            Gone = case Check of
                       {static, Id} ->
                           not maps:is_key(Id, Db);
                       {instance, _} ->
                           {_, DynDb} = Dyn,
                           not maps:is_key(OldPid, DynDb)
                               andalso not maps:is_key({restarting, OldPid}, DynDb)
                               andalso lookup_pid(Path) =:= OldPid
                   end,
            case Gone of
                true -> iolist_to_binary(["remove ", Path]);
                false -> none
            end;
        _ ->
            none
    end.

%%% ===========================================================================================
%%% scenario validation
%%% ===========================================================================================

check_doc(Doc) when is_map(Doc) ->
    keys_ok("file", Doc, [<<"name">>, <<"tree">>, <<"script">>], [<<"tree">>]),
    Tree = maps:get(<<"tree">>, Doc),
    check_sup("root", Tree),
    Steps = maps:get(<<"script">>, Doc, []),
    is_list(Steps) orelse bad("script is not a list"),
    lists:foreach(fun check_step/1, Steps),
    Ats = [maps:get(<<"at">>, S) || S <- Steps],
    Ats =:= lists:sort(Ats) orelse bad("steps are not sorted by at"),
    {Tree, Steps};
check_doc(_) ->
    bad("the file is not an object").

bad(Msg) -> throw({scenario, Msg}).

keys_ok(What, Map, Allowed, Required) ->
    [bad([What, ": unknown key ", K]) || K <- maps:keys(Map), not lists:member(K, Allowed)],
    [bad([What, ": missing key ", K]) || K <- Required, not maps:is_key(K, Map)],
    ok.

-define(SUP_KEYS, [<<"strategy">>, <<"intensity">>, <<"period">>, <<"auto_shutdown">>,
                   <<"children">>]).
-define(CHILD_KEYS, [<<"id">>, <<"type">>, <<"restart">>, <<"shutdown">>, <<"significant">>]).

check_sup(Path, Sup) when is_map(Sup) ->
    keys_ok(Path, Sup, ?SUP_KEYS ++ ?CHILD_KEYS, []),
    one_of(Path, Sup, <<"strategy">>, [<<"one_for_one">>, <<"one_for_all">>,
                                       <<"rest_for_one">>, <<"simple_one_for_one">>]),
    one_of(Path, Sup, <<"auto_shutdown">>, [<<"never">>, <<"any_significant">>,
                                            <<"all_significant">>]),
    int_ok(Path, Sup, <<"intensity">>, 0),
    int_ok(Path, Sup, <<"period">>, 1),
    Children = maps:get(<<"children">>, Sup, []),
    is_list(Children) orelse bad([Path, ": children is not a list"]),
    case maps:get(<<"strategy">>, Sup, <<"one_for_one">>) of
        <<"simple_one_for_one">> when length(Children) =/= 1 ->
            bad([Path, ": simple_one_for_one needs exactly one child"]);
        _ -> ok
    end,
    Ids = [maps:get(<<"id">>, C, undefined) || C <- Children, is_map(C)],
    length(Ids) =:= length(lists:usort(Ids)) orelse bad([Path, ": duplicate ids"]),
    Auto = maps:get(<<"auto_shutdown">>, Sup, <<"never">>),
    put({auto_shutdown, iolist_to_binary(Path)}, Auto),
    [check_child(Path, C, Auto) || C <- Children],
    ok;
check_sup(Path, _) ->
    bad([Path, ": not an object"]).

check_child(SupPath, C, Auto) when is_map(C) ->
    Id = case maps:get(<<"id">>, C, undefined) of
             B when is_binary(B), B =/= <<>> ->
                 [bad([SupPath, ": bad id ", B]) || <<Ch>> <= B,
                  not (Ch =:= $_ orelse (Ch >= $a andalso Ch =< $z)
                       orelse (Ch >= $A andalso Ch =< $Z) orelse (Ch >= $0 andalso Ch =< $9))],
                 B;
             _ -> bad([SupPath, ": child without id"])
         end,
    Path = [SupPath, "/", Id],
    one_of(Path, C, <<"type">>, [<<"worker">>, <<"supervisor">>]),
    one_of(Path, C, <<"restart">>, [<<"permanent">>, <<"transient">>, <<"temporary">>]),
    case maps:get(<<"shutdown">>, C, <<"brutal_kill">>) of
        <<"brutal_kill">> -> ok;
        <<"infinity">> -> ok;
        N when is_integer(N), N >= 0 -> ok;
        _ -> bad([Path, ": bad shutdown"])
    end,
    case maps:get(<<"significant">>, C, false) of
        true when Auto =:= <<"never">> ->
            bad([Path, ": significant child under auto_shutdown never (OTP rejects it)"]);
        true ->
            maps:get(<<"restart">>, C, <<"permanent">>) =/= <<"permanent">>
                orelse bad([Path, ": significant permanent child (OTP rejects it)"]);
        false -> ok;
        _ -> bad([Path, ": bad significant"])
    end,
    case maps:get(<<"type">>, C, <<"worker">>) of
        <<"supervisor">> -> check_sup(Path, C);
        _ -> keys_ok(Path, C, ?CHILD_KEYS, [<<"id">>])
    end;
check_child(SupPath, _, _) ->
    bad([SupPath, ": child is not an object"]).

one_of(Path, M, K, Values) ->
    case maps:find(K, M) of
        error -> ok;
        {ok, V} ->
            lists:member(V, Values) orelse bad([Path, ": bad ", K])
    end.

int_ok(Path, M, K, Min) ->
    case maps:find(K, M) of
        error -> ok;
        {ok, V} when is_integer(V), V >= Min -> ok;
        _ -> bad([Path, ": bad ", K])
    end.

check_step(S) when is_map(S) ->
    At = maps:get(<<"at">>, S, undefined),
    (is_integer(At) andalso At >= 0) orelse bad("step without a valid at"),
    Ctx = ["step at ", integer_to_list(At)],
    A = fun(Keys) -> keys_ok(Ctx, S, [<<"at">> | Keys], Keys) end,
    Str = fun(K) -> is_binary(maps:get(K, S)) orelse bad([Ctx, ": ", K, " not a string"]) end,
    if
        is_map_key(<<"exit">>, S) ->
            A([<<"exit">>, <<"reason">>]), Str(<<"exit">>), Str(<<"reason">>),
            check_reason(maps:get(<<"reason">>, S));
        is_map_key(<<"kill">>, S) -> A([<<"kill">>]), Str(<<"kill">>);
        is_map_key(<<"fail_starts">>, S) ->
            A([<<"fail_starts">>, <<"count">>]), Str(<<"fail_starts">>),
            is_integer(maps:get(<<"count">>, S)) orelse bad([Ctx, ": bad count"]);
        is_map_key(<<"ignore_shutdown">>, S) ->
            A([<<"ignore_shutdown">>]), Str(<<"ignore_shutdown">>);
        is_map_key(<<"stop">>, S) ->
            A([<<"stop">>]),
            maps:get(<<"stop">>, S) =:= true orelse bad([Ctx, ": stop must be true"]);
        is_map_key(<<"call">>, S) ->
            case maps:get(<<"call">>, S) of
                <<"start_child">> ->
                    keys_ok(Ctx, S, [<<"at">>, <<"call">>, <<"sup">>, <<"child">>],
                            [<<"sup">>]),
                    Str(<<"sup">>),
                    case maps:find(<<"child">>, S) of
                        {ok, C} ->
                            Sup = maps:get(<<"sup">>, S),
                            check_child(Sup, C, get({auto_shutdown, Sup}));
                        error -> ok
                    end;
                Op when Op =:= <<"terminate_child">>; Op =:= <<"restart_child">>;
                        Op =:= <<"delete_child">>; Op =:= <<"which_children">>;
                        Op =:= <<"count_children">> ->
                    A([<<"call">>, <<"path">>]), Str(<<"path">>);
                _ -> bad([Ctx, ": unknown call"])
            end;
        true -> bad([Ctx, ": no action"])
    end;
check_step(_) ->
    bad("step is not an object").

check_reason(<<"kill">>) ->
    bad("reason kill: use the kill step (exit(kill) from the worker itself is not a kill signal)");
check_reason(<<"{shutdown,", _/binary>> = R) ->
    case re:run(R, "^\\{shutdown,[A-Za-z0-9_]+\\}$") of
        {match, _} -> ok;
        nomatch -> bad(["bad reason ", R])
    end;
check_reason(R) ->
    case re:run(R, "^[A-Za-z0-9_]+$") of
        {match, _} -> ok;
        nomatch -> bad(["bad reason ", R])
    end.

%%% ===========================================================================================
%%% strict JSON parser (RFC 8259): objects -> maps with binary keys (duplicates rejected),
%%% arrays -> lists, strings -> UTF-8 binaries, numbers -> integers or floats,
%%% true/false/null -> atoms.
%%% ===========================================================================================

json_decode(Bin) when is_binary(Bin) ->
    {V, Rest} = json_value(json_ws(Bin)),
    case json_ws(Rest) of
        <<>> -> {ok, V};
        _ -> throw({json_error, "trailing characters"})
    end.

json_ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> json_ws(R);
json_ws(B) -> B.

json_value(<<${, R/binary>>) -> json_object(json_ws(R), #{});
json_value(<<$[, R/binary>>) -> json_array(json_ws(R), []);
json_value(<<$", R/binary>>) -> json_string(R, []);
json_value(<<"true", R/binary>>) -> {true, R};
json_value(<<"false", R/binary>>) -> {false, R};
json_value(<<"null", R/binary>>) -> {null, R};
json_value(<<C, _/binary>> = B) when C =:= $-; C >= $0, C =< $9 -> json_number(B);
json_value(_) -> throw({json_error, "value expected"}).

json_object(<<$}, R/binary>>, Acc) when map_size(Acc) =:= 0 -> {Acc, R};
json_object(<<$", R/binary>>, Acc) ->
    {K, R1} = json_string(R, []),
    case json_ws(R1) of
        <<$:, R2/binary>> ->
            {V, R3} = json_value(json_ws(R2)),
            is_map_key(K, Acc) andalso throw({json_error, ["duplicate key ", K]}),
            Acc1 = Acc#{K => V},
            case json_ws(R3) of
                <<$,, R4/binary>> -> json_object_key(json_ws(R4), Acc1);
                <<$}, R4/binary>> -> {Acc1, R4};
                _ -> throw({json_error, "',' or '}' expected"})
            end;
        _ -> throw({json_error, "':' expected"})
    end;
json_object(_, _) -> throw({json_error, "object key expected"}).

json_object_key(<<$", _/binary>> = B, Acc) -> json_object(B, Acc);
json_object_key(_, _) -> throw({json_error, "object key expected"}).

json_array(<<$], R/binary>>, []) -> {[], R};
json_array(B, Acc) ->
    {V, R} = json_value(B),
    case json_ws(R) of
        <<$,, R1/binary>> -> json_array(json_ws(R1), [V | Acc]);
        <<$], R1/binary>> -> {lists:reverse([V | Acc]), R1};
        _ -> throw({json_error, "',' or ']' expected"})
    end.

json_string(<<$", R/binary>>, Acc) ->
    {unicode:characters_to_binary(lists:reverse(Acc)), R};
json_string(<<$\\, E, R/binary>>, Acc) ->
    case E of
        $" -> json_string(R, [$" | Acc]);
        $\\ -> json_string(R, [$\\ | Acc]);
        $/ -> json_string(R, [$/ | Acc]);
        $b -> json_string(R, [$\b | Acc]);
        $f -> json_string(R, [$\f | Acc]);
        $n -> json_string(R, [$\n | Acc]);
        $r -> json_string(R, [$\r | Acc]);
        $t -> json_string(R, [$\t | Acc]);
        $u ->
            {Cp, R1} = json_hex4(R),
            if
                Cp >= 16#D800, Cp =< 16#DBFF ->
                    case R1 of
                        <<$\\, $u, R2/binary>> ->
                            {Lo, R3} = json_hex4(R2),
                            (Lo >= 16#DC00 andalso Lo =< 16#DFFF)
                                orelse throw({json_error, "bad surrogate pair"}),
                            json_string(R3, [16#10000 + ((Cp - 16#D800) bsl 10) + (Lo - 16#DC00)
                                             | Acc]);
                        _ -> throw({json_error, "lone surrogate"})
                    end;
                Cp >= 16#DC00, Cp =< 16#DFFF -> throw({json_error, "lone surrogate"});
                true -> json_string(R1, [Cp | Acc])
            end;
        _ -> throw({json_error, "bad escape"})
    end;
json_string(<<C/utf8, R/binary>>, Acc) when C >= 16#20 -> json_string(R, [C | Acc]);
json_string(_, _) -> throw({json_error, "bad string"}).

json_hex4(<<H:4/binary, R/binary>>) ->
    case io_lib:fread("~16u", binary_to_list(H)) of
        {ok, [N], []} -> {N, R};
        _ -> throw({json_error, "bad \\u escape"})
    end;
json_hex4(_) -> throw({json_error, "bad \\u escape"}).

json_number(B) ->
    {Int, R1} = json_int(B),
    {Frac, R2} = json_frac(R1),
    {Exp, R3} = json_exp(R2),
    case {Frac, Exp} of
        {"", ""} -> {list_to_integer(Int), R3};
        _ ->
            F = case Frac of "" -> ".0"; _ -> Frac end,
            {list_to_float(Int ++ F ++ Exp), R3}
    end.

json_int(<<$-, R/binary>>) ->
    {D, R1} = json_int_digits(R),
    {[$- | D], R1};
json_int(B) -> json_int_digits(B).

json_int_digits(<<$0, R/binary>>) -> {"0", R};
json_int_digits(<<C, _/binary>> = B) when C >= $1, C =< $9 -> json_digits(B, []);
json_int_digits(_) -> throw({json_error, "bad number"}).

json_digits(<<C, R/binary>>, Acc) when C >= $0, C =< $9 -> json_digits(R, [C | Acc]);
json_digits(_, []) -> throw({json_error, "bad number"});
json_digits(R, Acc) -> {lists:reverse(Acc), R}.

json_frac(<<$., R/binary>>) ->
    {D, R1} = json_digits(R, []),
    {[$. | D], R1};
json_frac(B) -> {"", B}.

json_exp(<<E, R/binary>>) when E =:= $e; E =:= $E ->
    {Sign, R1} = case R of
                     <<$+, X/binary>> -> {"+", X};
                     <<$-, X/binary>> -> {"-", X};
                     _ -> {"", R}
                 end,
    {D, R2} = json_digits(R1, []),
    {"e" ++ Sign ++ D, R2};
json_exp(B) -> {"", B}.
