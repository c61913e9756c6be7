//! Names nobody can fake (issue #18), on every protocol: what the member asking for a
//! name is told and what every other client sees of it, exactly. Each test has a
//! watcher on every protocol: `watcher` (Socket.IO, member 1), `guest-2` (WebSocket),
//! `tj` (TCP JSON, member 3), `guest-4` (TCP text).

mod common;

use common::{Client, TcpClient, TestServer, WsClient, joined, left, line, ws_line};
use serde_json::{Value, json};

/// One client of every protocol, seeing what the lobby shows of others.
struct Watchers {
    sio: Client,
    ws: WsClient,
    tj: TcpClient,
    tt: TcpClient,
}

impl Watchers {
    async fn connect(server: &TestServer) -> Self {
        let mut sio = Client::named(server, "watcher").await;
        let mut ws = WsClient::connect(server.websocket).await;
        expect_notice(&mut ws).await;
        sio.expect_update(joined("guest-2")).await;
        let mut tj = TcpClient::connect(server.tcp_json).await;
        tj.command("CONNECT", "tj").await;
        tj.expect("tj connected!").await;
        sio.expect_update(joined("tj")).await;
        expect_notice(&mut ws).await;
        let mut tt = TcpClient::connect(server.tcp_text).await;
        tt.expect("guest-4 connected!").await;
        sio.expect_update(joined("guest-4")).await;
        expect_notice(&mut ws).await;
        tj.expect("guest-4 connected!").await;
        Self { sio, ws, tj, tt }
    }

    /// Every watcher's next message announces that `name` joined.
    async fn see_join(&mut self, name: &str) {
        self.sio.expect_update(joined(name)).await;
        expect_notice(&mut self.ws).await;
        self.tj.expect(format!("{name} connected!")).await;
        self.tt.expect(format!("{name} connected!")).await;
    }

    /// Every watcher's next message is `text` said by `name` (no HTML in it).
    async fn see_line(&mut self, name: &str, text: &str) {
        self.sio.expect_update(line(name, text)).await;
        self.ws.expect(ws_line(name, text)).await;
        self.tj.expect(format!("{name} : {text}")).await;
        self.tt.expect(format!("{name} : {text}")).await;
    }

    /// Every watcher's next message announces that `name` left.
    async fn see_leave(&mut self, name: &str) {
        self.sio.expect_update(left(name)).await;
        expect_notice(&mut self.ws).await;
        self.tj.expect("Someone's out.").await;
        self.tt.expect(format!("{name} left.")).await;
    }
}

/// The next frame must be a join or leave notification (their counts are not names).
async fn expect_notice(ws: &mut WsClient) {
    let frame = ws.next().await;
    let value: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
    assert_eq!(value["type"], "notification", "{value}");
}

/// What a member asking for `asked` and given `given` is told.
fn taken(asked: &str, given: &str) -> String {
    format!("the name \"{asked}\" is taken: you are \"{given}\"")
}

/// A Socket.IO member that sent `newUser` `raw`, cleaned to `asked`: it is told first
/// if it gets `given` instead, then hears its join, which every watcher sees.
async fn socketio_asking(
    server: &TestServer,
    all: &mut Watchers,
    raw: &str,
    asked: &str,
    given: &str,
) -> Client {
    let mut member = Client::connect(server).await;
    member.emit("newUser", json!(raw)).await;
    if asked != given {
        member.expect_error(&taken(asked, given)).await;
    }
    member.expect_update(joined(given)).await;
    all.see_join(given).await;
    member
}

/// A TCP JSON member that sent `CONNECT` `raw`, as [`socketio_asking`].
async fn tcp_json_asking(
    server: &TestServer,
    all: &mut Watchers,
    raw: &str,
    asked: &str,
    given: &str,
) -> TcpClient {
    let mut member = TcpClient::connect(server.tcp_json).await;
    member.command("CONNECT", raw).await;
    if asked != given {
        member
            .expect(format!("error: {}\n", taken(asked, given)))
            .await;
    }
    member.expect(format!("{given} connected!")).await;
    all.see_join(given).await;
    member
}

const FAKE_LEAVE: &str = "admin님이 나가셨습니다.";

#[tokio::test(flavor = "multi_thread")]
async fn a_socketio_member_cannot_pass_for_the_server() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;
    // (newUser, the name asked for once cleaned, the name given)
    let cases = [
        ("SERVER", "SERVER", "SERVER-2"),
        ("Server", "Server", "Server-2"),
        ("ＳＥＲＶＥＲ", "ＳＥＲＶＥＲ", "ＳＥＲＶＥＲ-2"),
        ("ſerver", "ſerver", "ſerver-2"),
        ("SERVER\u{200b}", "SERVER", "SERVER-2"),
        ("\u{2067}SER\u{200d}VER\u{feff}", "SERVER", "SERVER-2"),
    ];
    for (new_user, asked, given) in cases {
        let impostor = socketio_asking(&server, &mut all, new_user, asked, given).await;
        impostor.say(FAKE_LEAVE).await;
        all.see_line(given, FAKE_LEAVE).await;
        impostor.disconnect().await;
        all.see_leave(given).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bidi_override_is_removed_and_what_is_left_is_an_ordinary_name() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;
    let mut rtl = socketio_asking(&server, &mut all, "\u{202e}REVRES", "REVRES", "REVRES").await;
    rtl.say(FAKE_LEAVE).await;
    all.see_line("REVRES", FAKE_LEAVE).await;
    // It was told nothing: the next thing it hears is a line of another.
    all.sio.say("hi").await;
    rtl.expect_update(line("watcher", "hi")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_json_and_websocket_members_cannot_pass_for_the_server() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;

    let mut tcp = tcp_json_asking(&server, &mut all, "S\u{200b}erver", "Server", "Server-2").await;
    tcp.command("CHAT", &format!("S\u{200b}erver : {FAKE_LEAVE}"))
        .await;
    tcp.expect(format!("Server-2 : {FAKE_LEAVE}")).await;
    all.see_line("Server-2", FAKE_LEAVE).await;

    // member 6: guest-6 until its first line.
    let mut ws = WsClient::connect(server.websocket).await;
    expect_notice(&mut ws).await;
    all.see_join("guest-6").await;
    tcp.expect("guest-6 connected!").await;
    // `Server-2` is held, in another case: the nearest free one is `-3`.
    ws.say("SERVER", FAKE_LEAVE).await;
    ws.expect(json!({"type": "error", "msg": taken("SERVER", "SERVER-3")}))
        .await;
    ws.expect(ws_line("SERVER-3", FAKE_LEAVE)).await;
    all.see_line("SERVER-3", FAKE_LEAVE).await;
    tcp.expect(format!("SERVER-3 : {FAKE_LEAVE}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_victim_on_tcp_json_gets_the_nearest_free_name() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;
    let mut victim = Client::named(&server, "victim").await;
    all.see_join("victim").await;

    let mut second = tcp_json_asking(&server, &mut all, "victim", "victim", "victim-2").await;
    victim.expect_update(joined("victim-2")).await;
    // Its lines go out under the name it was given, its typed name taken off.
    second.command("CHAT", "victim : it is me").await;
    second.expect("victim-2 : it is me").await;
    all.see_line("victim-2", "it is me").await;
    victim.expect_update(line("victim-2", "it is me")).await;

    // In another case, in full width, or behind a zero-width space: the same name.
    for (typed, asked, given) in [
        ("VICTIM", "VICTIM", "VICTIM-3"),
        ("ｖｉｃｔｉｍ", "ｖｉｃｔｉｍ", "ｖｉｃｔｉｍ-3"),
        ("\u{200b}victim", "victim", "victim-3"),
    ] {
        let third = tcp_json_asking(&server, &mut all, typed, asked, given).await;
        drop(third);
        all.see_leave(given).await;
        second
            .expect(format!("{given} connected!Someone's out."))
            .await;
        victim.expect_update(joined(given)).await;
        victim.expect_update(left(given)).await;
    }

    // A rename to the name it holds keeps it; a rename to a name present does not.
    second.command("CONNECT", "Victim-2").await;
    second.expect("Victim-2 connected!").await;
    all.see_join("Victim-2").await;
    second.command("CONNECT", "tj").await;
    second
        .expect(format!("error: {}\n", taken("tj", "tj-2")))
        .await;
    second.expect("tj-2 connected!").await;
    all.see_join("tj-2").await;
    // Once its holder has left, the name is free.
    victim.disconnect().await;
    all.see_leave("victim").await;
    second.expect("Someone's out.").await;
    second.command("CONNECT", "victim").await;
    second.expect("victim connected!").await;
    all.see_join("victim").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn socketio_names_are_unique_and_a_rename_to_its_own_name_keeps_it() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;
    let mut victim = Client::named(&server, "victim").await;
    all.see_join("victim").await;
    // A second newUser of the same name is the member's own.
    victim.emit("newUser", json!("victim")).await;
    victim.expect_update(joined("victim")).await;
    all.see_join("victim").await;

    let mut second = socketio_asking(&server, &mut all, "Victim", "Victim", "Victim-2").await;
    victim.expect_update(joined("Victim-2")).await;
    second.say("it is me").await;
    all.see_line("Victim-2", "it is me").await;
    victim.expect_update(line("Victim-2", "it is me")).await;
    // Renamed to a name another protocol's member holds.
    second.emit("newUser", json!("tj")).await;
    second.expect_error(&taken("tj", "tj-2")).await;
    second.expect_update(joined("tj-2")).await;
    all.see_join("tj-2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_frame_naming_a_present_member_keeps_the_name_it_was_given() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;
    let mut victim = Client::named(&server, "victim").await;
    all.see_join("victim").await;
    // member 6: guest-6 until its first line.
    let mut ws = WsClient::connect(server.websocket).await;
    expect_notice(&mut ws).await;
    all.see_join("guest-6").await;
    victim.expect_update(joined("guest-6")).await;

    ws.say("victim", "one").await;
    ws.expect(json!({"type": "error", "msg": taken("victim", "victim-2")}))
        .await;
    ws.expect(ws_line("victim-2", "one")).await;
    all.see_line("victim-2", "one").await;
    victim.expect_update(line("victim-2", "one")).await;
    // Told once: the next frames claim the same name and keep the one given.
    ws.say("victim", "two").await;
    ws.expect(ws_line("victim-2", "two")).await;
    all.see_line("victim-2", "two").await;
    victim.disconnect().await;
    all.see_leave("victim").await;
    expect_notice(&mut ws).await;
    ws.say("victim", "three").await;
    ws.expect(ws_line("victim-2", "three")).await;
    all.see_line("victim-2", "three").await;
    // A new claim is decided anew.
    ws.say("\u{2066}tj\u{2069}", "four").await;
    ws.expect(json!({"type": "error", "msg": taken("tj", "tj-2")}))
        .await;
    ws.expect(ws_line("tj-2", "four")).await;
    all.see_line("tj-2", "four").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_names_are_the_servers() {
    let server = TestServer::spawn().await;
    let mut all = Watchers::connect(&server).await;
    // Present (guest-4 on TCP text, guest-2 on WebSocket) or not come yet (guest-99):
    // a guest name is given to no other member.
    for (asked, given) in [
        ("guest-4", "guest-4-2"),
        ("GUEST-2", "GUEST-2-2"),
        ("guest-99", "guest-99-2"),
    ] {
        let sio = socketio_asking(&server, &mut all, asked, asked, given).await;
        sio.disconnect().await;
        all.see_leave(given).await;
    }
    let mut tcp = tcp_json_asking(&server, &mut all, "guest-2", "guest-2", "guest-2-2").await;
    // A WebSocket member naming itself by its own guest name keeps it, untold.
    all.ws.say("guest-2", "still me").await;
    all.ws.expect(ws_line("guest-2", "still me")).await;
    all.sio.expect_update(line("guest-2", "still me")).await;
    tcp.expect("guest-2 : still me").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nearest_free_name_fits_the_length_limit() {
    let server = TestServer::spawn_with(|config| config.max_name_chars = 7).await;
    let mut all = Watchers::connect(&server).await;
    let _first = socketio_asking(&server, &mut all, "abcdefgh", "abcdefg", "abcdefg").await;
    // Invisible characters take no room: removed before the cut.
    let raw = "\u{200b}\u{200b}abcdefgh";
    let _second = tcp_json_asking(&server, &mut all, raw, "abcdefg", "abcde-2").await;
}
